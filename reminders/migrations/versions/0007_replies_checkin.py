"""check-in kind and details, staff inbox priority and reason

Revision ID: 0007_replies_checkin
Revises: 0006_language_condition
Create Date: 2026-11-21 21:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_replies_checkin'
down_revision = '0006_language_condition'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('checkins') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=10), nullable=False, server_default='mood'))
        batch.add_column(sa.Column('details', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('inbound_messages') as batch:
        batch.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('flag_reason', sa.String(length=300), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages') as batch:
        batch.drop_column('flag_reason')
        batch.drop_column('priority')
    with op.batch_alter_table('checkins') as batch:
        batch.drop_column('details')
        batch.drop_column('kind')
