"""patient language and medications to hold, course condition

Revision ID: 0006_language_condition
Revises: 0005_import_jobs
Create Date: 2026-11-21 21:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_language_condition'
down_revision = '0005_import_jobs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('patients') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), nullable=False, server_default='en'))
        batch.add_column(sa.Column('medications_to_hold', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('courses') as batch:
        batch.add_column(sa.Column('condition', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('courses') as batch:
        batch.drop_column('condition')
    with op.batch_alter_table('patients') as batch:
        batch.drop_column('medications_to_hold')
        batch.drop_column('language')
