"""Staff accounts: a password reset by an admin makes the user choose a new one at next sign-in

Revision ID: 0019_staff_accounts
Revises: 0018_outage_resend

- staff_users.must_change_password: set when an admin (or `reminders user reset-password`) resets
  the password; cleared when the user chooses their own.
"""
from alembic import op
import sqlalchemy as sa


revision = '0019_staff_accounts'
down_revision = '0018_outage_resend'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('staff_users') as batch:
        batch.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('staff_users') as batch:
        batch.drop_column('must_change_password')
