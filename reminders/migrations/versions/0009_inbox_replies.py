"""The inbox answers a patient: who took an item, and a note of what was done

Revision ID: 0009_inbox_replies
Revises: 0008_whatsapp
Create Date: 2026-11-22 01:40:00

- inbound_messages.assigned_to, assigned_at: the staff member (email) who took the item.
- inbound_messages.done_note: free text, what was done about it ("called, her husband drives").
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_inbox_replies'
down_revision = '0008_whatsapp'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_messages') as batch:
        batch.add_column(sa.Column('assigned_to', sa.String(length=254), nullable=True))
        batch.add_column(sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('done_note', sa.Text(), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages') as batch:
        batch.drop_column('done_note')
        batch.drop_column('assigned_at')
        batch.drop_column('assigned_to')
