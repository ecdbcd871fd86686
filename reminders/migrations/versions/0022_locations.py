"""A clinic's locations

Revision ID: 0022_locations
Revises: 0021_no_show_undo

- locations: one row per location beyond what the settings say (each empty field is the setting's).
- appointments.location_id: where the visit is (NULL: the default location, the settings).
- escalations.location_id: whose on-call hears about it.
- outbox.location_id: the location a message goes out for; outbox.from_address: the sender it used.
- staff_user_locations: the locations a staff user works at (none: all).
"""
from alembic import op
import sqlalchemy as sa

from reminders.models.base import UTCDateTime


revision = '0022_locations'
down_revision = '0021_no_show_undo'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'locations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column('address', sa.String(length=300), nullable=True),
        sa.Column('phone', sa.String(length=40), nullable=True),
        sa.Column('timezone', sa.String(length=64), nullable=True),
        sa.Column('sender', sa.String(length=64), nullable=True),
        sa.Column('sms_per_second', sa.Float(), nullable=True),
        sa.Column('office_hours_start', sa.String(length=5), nullable=True),
        sa.Column('office_hours_end', sa.String(length=5), nullable=True),
        sa.Column('office_days', sa.String(length=60), nullable=True),
        sa.Column('holidays', sa.Text(), nullable=True),
        sa.Column('oncall_phones', sa.Text(), nullable=True),
        sa.Column('oncall_emails', sa.Text(), nullable=True),
        sa.Column('arrive_minutes_before', sa.Integer(), nullable=True),
        sa.Column('rideshare_allowed', sa.Boolean(), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_locations')),
        sa.UniqueConstraint('code', name=op.f('uq_locations_code')),
    )
    op.create_table(
        'staff_user_locations',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('location_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'], ondelete='CASCADE',
                                name=op.f('fk_staff_user_locations_user_id_staff_users')),
        sa.ForeignKeyConstraint(['location_id'], ['locations.id'], ondelete='CASCADE',
                                name=op.f('fk_staff_user_locations_location_id_locations')),
        sa.PrimaryKeyConstraint('user_id', 'location_id', name=op.f('pk_staff_user_locations')),
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('location_id', sa.Integer(), nullable=True))
        batch_op.create_index(op.f('ix_appointments_location_id'), ['location_id'])
        batch_op.create_foreign_key(op.f('fk_appointments_location_id_locations'), 'locations', ['location_id'], ['id'],
                                    ondelete='RESTRICT')
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('location_id', sa.Integer(), nullable=True))
        batch_op.create_index(op.f('ix_escalations_location_id'), ['location_id'])
        batch_op.create_foreign_key(op.f('fk_escalations_location_id_locations'), 'locations', ['location_id'], ['id'],
                                    ondelete='SET NULL')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('location_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('from_address', sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(op.f('fk_outbox_location_id_locations'), 'locations', ['location_id'], ['id'],
                                    ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_outbox_location_id_locations'), type_='foreignkey')
        batch_op.drop_column('from_address')
        batch_op.drop_column('location_id')
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_escalations_location_id_locations'), type_='foreignkey')
        batch_op.drop_index('ix_escalations_location_id')
        batch_op.drop_column('location_id')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_appointments_location_id_locations'), type_='foreignkey')
        batch_op.drop_index('ix_appointments_location_id')
        batch_op.drop_column('location_id')
    op.drop_table('staff_user_locations')
    op.drop_table('locations')
