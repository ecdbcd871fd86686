"""import jobs: staff CSV uploads imported in the background, with their reports

Revision ID: 0005_import_jobs
Revises: 0004_provider_health
Create Date: 2026-11-21 18:27:51.666779
"""
from alembic import op
import sqlalchemy as sa
import reminders.models.base


revision = '0005_import_jobs'
down_revision = '0004_provider_health'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('import_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('lines_total', sa.Integer(), nullable=False),
    sa.Column('lines_done', sa.Integer(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('created_at', reminders.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', reminders.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', reminders.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', reminders.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_jobs'))
    )
    op.create_table('import_job_rows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('result', sa.String(length=10), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['import_jobs.id'], name=op.f('fk_import_job_rows_job_id_import_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_job_rows'))
    )
    with op.batch_alter_table('import_job_rows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_job_rows_job_id'), ['job_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('import_job_rows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_job_rows_job_id'))

    op.drop_table('import_job_rows')
    op.drop_table('import_jobs')
    
