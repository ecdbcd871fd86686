"""Validated questionnaires (PHQ-9, GAD-7, PCL-5, pain) by secure link or by SMS

Revision ID: 0010_measures
Revises: 0009_inbox_replies
Create Date: 2026-11-22 03:10:00

- questionnaires: one scale put to one patient on one occasion, its token, answers and score.
- escalations.questionnaire_id: a self-harm answer (PHQ-9 item 9) opens an escalation without a text.
- Visits still to come are marked for planning, so those booked before this version get their
  questionnaires too (the planner adds only what is missing).
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

from reminders.models.base import UTCDateTime


revision = '0010_measures'
down_revision = '0009_inbox_replies'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'questionnaires',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('occasion_key', sa.String(length=100), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('course_id', sa.Integer(), nullable=True),
        sa.Column('appointment_id', sa.Integer(), nullable=True),
        sa.Column('scale', sa.String(length=20), nullable=False),
        sa.Column('occasion', sa.String(length=30), nullable=False),
        sa.Column('language', sa.String(length=5), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('answers', sa.JSON(), nullable=False),
        sa.Column('asked_item', sa.Integer(), nullable=True),
        sa.Column('asked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('score', sa.Integer(), nullable=True),
        sa.Column('band', sa.String(length=30), nullable=True),
        sa.Column('screened_out', sa.Boolean(), nullable=False),
        sa.Column('safety_raised', sa.Boolean(), nullable=False),
        sa.Column('escalation_id', sa.Integer(), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['course_id'], ['courses.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('occasion_key'),
        sa.UniqueConstraint('token'),
    )
    op.create_index('ix_questionnaires_patient_scale', 'questionnaires', ['patient_id', 'scale', 'completed_at'])
    op.create_index('ix_questionnaires_sms_open', 'questionnaires', ['patient_id', 'channel', 'status'])
    with op.batch_alter_table('escalations') as batch:
        batch.add_column(sa.Column('questionnaire_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_escalations_questionnaire_id_questionnaires', 'questionnaires',
                                 ['questionnaire_id'], ['id'], ondelete='SET NULL')
    appointments = sa.table('appointments', sa.column('starts_at', UTCDateTime()), sa.column('status', sa.String()),
                            sa.column('needs_planning', sa.Boolean()))
    op.execute(appointments.update()
               .where(appointments.c.starts_at > datetime.now(timezone.utc),
                      appointments.c.status.in_(('scheduled', 'confirmed')))
               .values(needs_planning=True))


def downgrade() -> None:
    with op.batch_alter_table('escalations') as batch:
        batch.drop_constraint('fk_escalations_questionnaire_id_questionnaires', type_='foreignkey')
        batch.drop_column('questionnaire_id')
    op.drop_index('ix_questionnaires_sms_open', table_name='questionnaires')
    op.drop_index('ix_questionnaires_patient_scale', table_name='questionnaires')
    op.drop_table('questionnaires')
