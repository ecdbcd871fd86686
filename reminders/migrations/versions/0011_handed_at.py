"""A sending row records when its provider call began

Revision ID: 0011_handed_at
Revises: 0010_measures
Create Date: 2026-12-06 21:00:00

- outbox.handed_at: set, and committed, just before the row's own provider call. A row left in
  `sending` without it never reached the provider and goes back to the schedule; only a row with
  it may have gone, and is shown to staff as unknown.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_handed_at'
down_revision = '0010_measures'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('handed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('handed_at')
