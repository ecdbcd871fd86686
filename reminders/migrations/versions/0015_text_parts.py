"""A text too long for its budget goes as several texts, one outbox row each

Revision ID: 0015_text_parts
Revises: 0014_fhir_sync
Create Date: 2026-12-07 02:10:00

- outbox.part: 1 for a message (or the first text of one); 2, 3, ... for the texts that follow it
  (reminders.outbox.rows.plan_following_parts). Each part is its own row, claimed and recorded on
  its own, so a crash between two texts never sends the first again.
"""
from alembic import op
import sqlalchemy as sa


revision = '0015_text_parts'
down_revision = '0014_fhir_sync'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('part', sa.Integer(), nullable=False, server_default='1'))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('part')
