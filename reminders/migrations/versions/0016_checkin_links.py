"""Check-in links: email-only patients answer their check-in on a page

Revision ID: 0016_checkin_links
Revises: 0015_text_parts

- checkin_links: one per check-in email (its outbox row): the random token of the
  PUBLIC_BASE_URL/c/<token> page, the patient, the page's language, when the link expires and
  when it was answered (a link is answered once).
"""
from alembic import op
import sqlalchemy as sa

from reminders.models.base import UTCDateTime


revision = '0016_checkin_links'
down_revision = '0015_text_parts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'checkin_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('outbox_id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('language', sa.String(length=5), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('answered_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_checkin_links_outbox_id_outbox'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_checkin_links_patient_id_patients'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin_links')),
        sa.UniqueConstraint('outbox_id', name=op.f('uq_checkin_links_outbox_id')),
        sa.UniqueConstraint('token', name=op.f('uq_checkin_links_token')),
    )
    with op.batch_alter_table('checkin_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkin_links_patient_id'), ['patient_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('checkin_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkin_links_patient_id'))
    op.drop_table('checkin_links')
