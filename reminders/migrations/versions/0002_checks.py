"""planning errors kept on the visit; CHECK constraints behind intake's validation

Revision ID: 0002_checks
Revises: 0001

- appointments.planning_error: why the planner could not plan a visit (shown to staff). The
  planner skips such a visit until it changes instead of failing every pass for everyone.
- CHECK constraints on the values intake already enforces (appointment kind, status and length,
  a patient's preferred channel, an outbox row's status), so a bug or a hand-made SQL edit
  cannot store a value the rest of the service does not expect. On PostgreSQL only: SQLite can
  add a CHECK only by rebuilding the table, and with foreign keys on (as the service runs it)
  dropping the old appointments table would cascade to every outbox row that refers to it.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_checks'
down_revision = '0001'
branch_labels = None
depends_on = None

APPOINTMENT_KINDS = ('induction', 'maintenance')
APPOINTMENT_STATUSES = ('scheduled', 'confirmed', 'canceled', 'completed', 'no_show')
CHANNELS = ('sms', 'email', 'both')
OUTBOX_STATUSES = ('planned', 'queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'skipped',
                   'canceled', 'unknown')


def one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    # Lengths outside what intake allows were never accepted; clamp any made by hand so the
    # constraint can be added.
    op.execute("UPDATE appointments SET duration_minutes = 5 WHERE duration_minutes < 5")
    op.execute("UPDATE appointments SET duration_minutes = 600 WHERE duration_minutes > 600")
    op.add_column('appointments', sa.Column('planning_error', sa.String(length=300), nullable=True))
    if op.get_bind().dialect.name != 'postgresql':
        return
    # Named by the models' naming convention (ck_<table>_<name>).
    op.create_check_constraint('kind', 'appointments', one_of('kind', APPOINTMENT_KINDS))
    op.create_check_constraint('status', 'appointments', one_of('status', APPOINTMENT_STATUSES))
    op.create_check_constraint('duration_minutes', 'appointments', 'duration_minutes BETWEEN 5 AND 600')
    op.create_check_constraint('preferred_channel', 'patients', one_of('preferred_channel', CHANNELS))
    op.create_check_constraint('status', 'outbox', one_of('status', OUTBOX_STATUSES))
    op.create_check_constraint('attempts', 'outbox', 'attempts >= 0')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table, name in (('outbox', 'attempts'), ('outbox', 'status'), ('patients', 'preferred_channel'),
                            ('appointments', 'duration_minutes'), ('appointments', 'status'), ('appointments', 'kind')):
            op.drop_constraint(f'ck_{table}_{name}', table, type_='check')
    op.drop_column('appointments', 'planning_error')
