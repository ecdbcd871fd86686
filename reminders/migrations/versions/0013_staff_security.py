"""Staff security: two-step sign-in, a tamper-evident audit log, retention and erasure markers

Revision ID: 0013_staff_security
Revises: 0012_screen_negative
Create Date: 2026-12-11 09:00:00

- staff_users.mfa_secret (the TOTP secret, encrypted with a key derived from SECRET_KEY),
  mfa_enabled_at, mfa_last_step (the last TOTP time step taken: a code is never taken twice).
- staff_recovery_codes: the SHA-256 of each one-time recovery code, and when it was used.
- audit_log.prev_hash, audit_log.hash: each row carries the hash of the one before it
  (reminders.models.staff.audit_hash). Rows stored before are chained here, in id order.
- outbox.body_purged_at, inbound_messages.body_purged_at: the words were blanked after
  RETENTION_DAYS (reminders.retention); the rows stay as metadata.
- patients.erased_at: the patient's personal data was erased.
"""
from alembic import op
import sqlalchemy as sa

from reminders.models.base import UTCDateTime
from reminders.models.staff import audit_hash


revision = '0013_staff_security'
down_revision = '0012_screen_negative'
branch_labels = None
depends_on = None

audit_log = sa.table(
    'audit_log',
    sa.column('id', sa.Integer), sa.column('at', UTCDateTime()), sa.column('actor', sa.String),
    sa.column('action', sa.String), sa.column('target_type', sa.String), sa.column('target_id', sa.String),
    sa.column('detail', sa.JSON), sa.column('prev_hash', sa.String), sa.column('hash', sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table('staff_users') as batch:
        batch.add_column(sa.Column('mfa_secret', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('mfa_enabled_at', UTCDateTime(), nullable=True))
        batch.add_column(sa.Column('mfa_last_step', sa.Integer(), nullable=True))
    op.create_table(
        'staff_recovery_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('used_at', UTCDateTime(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'],
                                name=op.f('fk_staff_recovery_codes_user_id_staff_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_recovery_codes')),
    )
    op.create_index(op.f('ix_staff_recovery_codes_user_id'), 'staff_recovery_codes', ['user_id'], unique=False)
    with op.batch_alter_table('audit_log') as batch:
        batch.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('body_purged_at', UTCDateTime(), nullable=True))
    with op.batch_alter_table('inbound_messages') as batch:
        batch.add_column(sa.Column('body_purged_at', UTCDateTime(), nullable=True))
    with op.batch_alter_table('patients') as batch:
        batch.add_column(sa.Column('erased_at', UTCDateTime(), nullable=True))

    # The rows already there are chained in id order (the only time audit rows are written to).
    connection = op.get_bind()
    prev = ''
    rows = connection.execute(sa.select(audit_log.c.id, audit_log.c.at, audit_log.c.actor, audit_log.c.action,
                                        audit_log.c.target_type, audit_log.c.target_id, audit_log.c.detail)
                              .order_by(audit_log.c.id)).fetchall()
    for row in rows:
        digest = audit_hash(prev, row.at, row.actor, row.action, row.target_type or '', row.target_id or '',
                            row.detail or {})
        connection.execute(audit_log.update().where(audit_log.c.id == row.id).values(prev_hash=prev, hash=digest))
        prev = digest


def downgrade() -> None:
    with op.batch_alter_table('patients') as batch:
        batch.drop_column('erased_at')
    with op.batch_alter_table('inbound_messages') as batch:
        batch.drop_column('body_purged_at')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('body_purged_at')
    with op.batch_alter_table('audit_log') as batch:
        batch.drop_column('hash')
        batch.drop_column('prev_hash')
    op.drop_index(op.f('ix_staff_recovery_codes_user_id'), table_name='staff_recovery_codes')
    op.drop_table('staff_recovery_codes')
    with op.batch_alter_table('staff_users') as batch:
        batch.drop_column('mfa_last_step')
        batch.drop_column('mfa_enabled_at')
        batch.drop_column('mfa_secret')
