"""Outages and resending: no schema change. The welcome's hold, the reply's state and
resending use the outbox's existing columns (status, status_reason, due_at, attempts); the
resend itself is in the audit log. Kept so that the revision chain stays as planned.

Revision ID: 0018_outage_resend
Revises: 0017_escalation_claims
"""
from alembic import op
import sqlalchemy as sa


revision = '0018_outage_resend'
down_revision = '0017_escalation_claims'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
