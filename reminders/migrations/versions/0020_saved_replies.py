"""Saved replies: admins edit them per language; they may use the patient's clock times

Revision ID: 0020_saved_replies
Revises: 0019_staff_accounts
Create Date: 2026-12-07 05:30:00

- saved_replies: title, language, body (a small template rendered for the patient), position,
  deleted_at (a deleted reply stays for the audit log).
- Seeded with the four replies that were built in (ride home, fasting, reschedule, call us), in
  English and Spanish, with the patient's own clock times instead of hours. The text is frozen
  here: later edits are the clinic's own.
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import reminders.models.base


revision = '0020_saved_replies'
down_revision = '0019_staff_accounts'
branch_labels = None
depends_on = None

SEED = (
    ("en", "Ride home",
     "Yes, someone else can drive you. Please do not drive yourself for the rest of the day after your infusion"
     "{% if visit %} on {{ visit.date }}; you should be ready to leave around {{ visit.done_around }}{% endif %}. "
     "Your driver can wait in the lobby."),
    ("en", "Fasting",
     "{% if visit and visit.eat_until %}For your visit on {{ visit.date }} at {{ visit.time }}: please eat nothing "
     "after {{ visit.eat_until }}{% if visit.clear_liquids_until %}. Clear liquids (water, black tea or coffee, no "
     "milk) are fine until {{ visit.clear_liquids_until }}, then nothing{% endif %}."
     "{% elif prep.fasting %}Please have no food for {{ prep.solids_hours }} hours and no drinks for "
     "{{ prep.clear_liquids_hours }} hours before your infusion.{% endif %} "
     "Your usual medicines are fine with a small sip of water unless we told you otherwise."),
    ("en", "Reschedule",
     "Thanks for letting us know, {{ patient.first_name }}. We will call you today to find a new time"
     "{% if visit %} for your visit on {{ visit.date }} at {{ visit.time }}{% endif %}."),
    ("en", "Call us",
     "Thanks for your message, {{ patient.first_name }}. Please call {{ clinic.name }}"
     "{% if clinic.phone %} at {{ clinic.phone }}{% endif %} when you can so we can talk it through."),
    ("es", "Transporte a casa",
     "Sí, otra persona puede llevarle a casa. No maneje usted el resto del día después de la infusión"
     "{% if visit %} del {{ visit.date }}; podrá irse alrededor de {{ visit.done_around }}{% endif %}. "
     "Quien le lleve puede esperar en la recepción."),
    ("es", "Ayuno",
     "{% if visit and visit.eat_until %}Para su visita del {{ visit.date }} a {{ visit.time }}: no coma nada "
     "después de {{ visit.eat_until }}{% if visit.clear_liquids_until %}. Puede tomar líquidos claros (agua, té o "
     "café sin leche) hasta {{ visit.clear_liquids_until }}, y después nada{% endif %}."
     "{% elif prep.fasting %}No coma nada durante {{ prep.solids_hours }} horas ni beba nada durante "
     "{{ prep.clear_liquids_hours }} horas antes de la infusión.{% endif %} "
     "Puede tomar sus medicinas de siempre con un sorbo de agua, salvo que le hayamos dicho otra cosa."),
    ("es", "Reprogramar",
     "Gracias por avisarnos, {{ patient.first_name }}. Le llamaremos hoy para buscar otra hora"
     "{% if visit %} para su visita del {{ visit.date }} a {{ visit.time }}{% endif %}."),
    ("es", "Llámenos",
     "Gracias por su mensaje, {{ patient.first_name }}. Llame a {{ clinic.name }}"
     "{% if clinic.phone %} al {{ clinic.phone }}{% endif %} cuando pueda para hablarlo."),
)


def upgrade() -> None:
    table = op.create_table('saved_replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('title', sa.String(length=80), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', reminders.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', reminders.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=254), nullable=False),
    sa.Column('deleted_at', reminders.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_replies'))
    )
    with op.batch_alter_table('saved_replies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_saved_replies_language'), ['language'], unique=False)
    now = datetime.now(timezone.utc)
    positions: dict[str, int] = {}
    rows = []
    for language, title, body in SEED:
        positions[language] = positions.get(language, 0) + 1
        rows.append({"language": language, "title": title, "body": body, "position": positions[language],
                     "created_at": now, "updated_at": now, "updated_by": "", "deleted_at": None})
    op.bulk_insert(table, rows)


def downgrade() -> None:
    with op.batch_alter_table('saved_replies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_saved_replies_language'))
    op.drop_table('saved_replies')
