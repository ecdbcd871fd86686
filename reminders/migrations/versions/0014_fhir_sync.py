"""FHIR sync state: where the sync of each FHIR server stands

Revision ID: 0014_fhir_sync
Revises: 0013_staff_security
Create Date: 2026-12-12 09:00:00

- fhir_sync_state: one row per FHIR_BASE_URL: the newest meta.lastUpdated taken in, of
  appointments and of patients (the next sync asks for `_lastUpdated=ge` it), when it last ran
  and re-read its window, and its summary.
"""
from alembic import op
import sqlalchemy as sa

from reminders.models.base import UTCDateTime


revision = '0014_fhir_sync'
down_revision = '0013_staff_security'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'fhir_sync_state',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('base_url', sa.String(length=500), nullable=False),
        sa.Column('high_water', UTCDateTime(timezone=True), nullable=True),
        sa.Column('patient_high_water', UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_sync_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_reconciled_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_summary', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_sync_state')),
        sa.UniqueConstraint('base_url', name=op.f('uq_fhir_sync_state_base_url')),
    )


def downgrade() -> None:
    op.drop_table('fhir_sync_state')
