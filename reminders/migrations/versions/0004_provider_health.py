"""provider health: the circuit breaker shared by every process

Revision ID: 0004_provider_health
Revises: 0003_sessions
Create Date: 2026-11-21 18:30:00
"""
from alembic import op
import sqlalchemy as sa
import reminders.models.base


revision = '0004_provider_health'
down_revision = '0003_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('provider_health',
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('failing_since', reminders.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('open_until', reminders.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('probe_outbox_id', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('updated_at', reminders.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel', name=op.f('pk_provider_health'))
    )


def downgrade() -> None:
    op.drop_table('provider_health')
