"""The outbox's reason as a code

Revision ID: 0023_outbox_reason_code
Revises: 0022_locations

- outbox.reason_code: why a row is where it is, for the code to decide on (reminders.models.outbox.
  ReasonCode); outbox.status_reason keeps the words staff read. Rows written before this
  migration get the code their words stand for, where there is one.
"""
from alembic import op
import sqlalchemy as sa


revision = '0023_outbox_reason_code'
down_revision = '0022_locations'
branch_labels = None
depends_on = None

# The words each code's rows were written with until now: exact, or (ending in %) how they begin.
WORDS_OF_CODES = {
    'retrying': ('retrying after a temporary error%',),
    'gave_up': ('provider unavailable until the visit', 'provider unavailable until it was too late to be useful'),
    'withdrawn': ('no longer applies%', 'visit marked no-show', 'visit no longer marked no-show'),
    'visit_canceled': ('visit canceled',),
    'expired': ('too late to be useful',),
    'waiting_for_welcome': ('waiting for the welcome text to go first',),
    'nothing_to_introduce': ('no text planned for the patient yet',),
    'unknown_after_crash': ('the worker stopped during the send; check before resending',),
    'released_unsent': ('the worker stopped before sending it; back in the schedule',),
    'quiet_hours': ('waiting for the end of quiet hours',),
    'provider_paused': ('waiting for the SMS provider to answer again', 'waiting for the email server to answer again',
                        'waiting for the % provider to answer again'),
}


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason_code', sa.String(length=40), nullable=True))
    outbox = sa.table('outbox', sa.column('status_reason', sa.String), sa.column('reason_code', sa.String))
    for code, words in WORDS_OF_CODES.items():
        matches = [outbox.c.status_reason.like(w) if '%' in w else outbox.c.status_reason == w for w in words]
        op.execute(outbox.update().where(outbox.c.reason_code.is_(None), sa.or_(*matches)).values(reason_code=code))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('reason_code')
