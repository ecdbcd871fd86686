"""No-show and completed marks that staff can undo for a few minutes

Revision ID: 0021_no_show_undo
Revises: 0020_saved_replies

- appointments.status_changed_at: when staff last marked the visit completed or no-show (or undid
  it); "we missed you" waits NO_SHOW_UNDO_MINUTES after it, so an undo sends nothing.
- appointments.status_before_change: the status an undo puts back (scheduled or confirmed).
"""
from alembic import op
import sqlalchemy as sa

from reminders.models.base import UTCDateTime


revision = '0021_no_show_undo'
down_revision = '0020_saved_replies'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_changed_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('status_before_change', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_column('status_before_change')
        batch_op.drop_column('status_changed_at')
