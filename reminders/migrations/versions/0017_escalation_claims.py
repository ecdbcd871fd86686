"""Escalations claimed apart from resolved

Revision ID: 0017_escalation_claims
Revises: 0016_checkin_links

- escalations.claimed_at, claimed_by: who said "I'm on it", and when. Claiming stops the
  re-alerts; the escalation stays with its texts until resolved with an outcome note.
- escalations.status gains the value "claimed" (open -> claimed -> acknowledged). "acknowledged"
  keeps meaning resolved, so rows written before this migration read as they did.
"""
from alembic import op
import sqlalchemy as sa

from reminders.models.base import UTCDateTime


revision = '0017_escalation_claims'
down_revision = '0016_checkin_links'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=254), nullable=True))


def downgrade() -> None:
    # A claimed escalation is still unresolved: it goes back to open (and re-alerting) rather
    # than reading as resolved.
    op.execute("UPDATE escalations SET status = 'open' WHERE status = 'claimed'")
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('claimed_at')
