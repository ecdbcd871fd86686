"""server-side staff sessions; template versions flagged when they fail at send time

Revision ID: 0003_sessions
Revises: 0002_checks
"""
from alembic import op
import sqlalchemy as sa
import reminders.models.base


revision = '0003_sessions'
down_revision = '0002_checks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', reminders.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', reminders.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', reminders.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'], name=op.f('fk_staff_sessions_user_id_staff_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions'))
    )
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_sessions_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('template_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_at', reminders.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('failure', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('template_versions', schema=None) as batch_op:
        batch_op.drop_column('failure')
        batch_op.drop_column('failed_at')
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_sessions_user_id'))
    op.drop_table('staff_sessions')
