"""WhatsApp: a patient may prefer it, and an inbound text says which channel it came by

Revision ID: 0008_whatsapp
Revises: 0007_replies_checkin
Create Date: 2026-11-22 00:30:00

- patients.preferred_channel may be 'whatsapp'. The CHECK constraint exists on PostgreSQL only
  (see 0002_checks: SQLite would have to rebuild the table, cascading to the outbox), so only
  PostgreSQL's is replaced.
- inbound_messages.channel: 'sms' or 'whatsapp', the channel the patient wrote on (every text
  stored before this one came by SMS).
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_whatsapp'
down_revision = '0007_replies_checkin'
branch_labels = None
depends_on = None

CHANNELS_BEFORE = ('sms', 'email', 'both')
CHANNELS = ('sms', 'email', 'both', 'whatsapp')


def one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _preferred_channel_check(values: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    # Named by the models' naming convention (ck_<table>_<name>).
    op.drop_constraint(op.f('ck_patients_preferred_channel'), 'patients', type_='check')
    op.create_check_constraint('preferred_channel', 'patients', one_of('preferred_channel', values))


def upgrade() -> None:
    _preferred_channel_check(CHANNELS)
    with op.batch_alter_table('inbound_messages') as batch:
        batch.add_column(sa.Column('channel', sa.String(length=10), nullable=False, server_default='sms'))


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages') as batch:
        batch.drop_column('channel')
    # A patient who chose WhatsApp is texted by SMS once WhatsApp is gone.
    op.execute("UPDATE patients SET preferred_channel = 'sms' WHERE preferred_channel = 'whatsapp'")
    _preferred_channel_check(CHANNELS_BEFORE)
