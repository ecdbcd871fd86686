"""Screen negatives have no total; the PHQ-9's difficulty answer is kept

Revision ID: 0012_screen_negative
Revises: 0011_handed_at
Create Date: 2026-12-10 09:00:00

- questionnaires.extra_answer: the answer to the scale's unscored question after its items (the
  PHQ-9's "how difficult have these problems made it..."), never part of the score.
- A questionnaire stopped by SMS after a negative PHQ-2 or GAD-2 was stored with the items not
  asked counted as 0, as if it were a total. It is now "screen negative": no score, band
  "screen_negative" (the screener's own score is read from its answers), so it never counts toward
  a baseline, a response or a remission. Rows stored before are changed the same way; the
  downgrade puts the old total back (the answers given, the rest as 0).
"""
from alembic import op
import sqlalchemy as sa


revision = '0012_screen_negative'
down_revision = '0011_handed_at'
branch_labels = None
depends_on = None

questionnaires = sa.table(
    'questionnaires',
    sa.column('id', sa.Integer), sa.column('score', sa.Integer), sa.column('band', sa.String),
    sa.column('screened_out', sa.Boolean), sa.column('status', sa.String), sa.column('answers', sa.JSON),
)


def upgrade() -> None:
    with op.batch_alter_table('questionnaires') as batch:
        batch.add_column(sa.Column('extra_answer', sa.Integer(), nullable=True))
    op.execute(questionnaires.update()
               .where(questionnaires.c.screened_out.is_(True), questionnaires.c.status == 'completed')
               .values(score=None, band='screen_negative'))


def downgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(questionnaires.c.id, questionnaires.c.answers)
                              .where(questionnaires.c.band == 'screen_negative')).fetchall()
    for row_id, answers in rows:
        total = sum(int(v) for v in (answers or {}).values())
        band = 'minimal' if total <= 4 else 'mild'  # a screen negative's answers stay low
        connection.execute(questionnaires.update().where(questionnaires.c.id == row_id)
                           .values(score=total, band=band))
    with op.batch_alter_table('questionnaires') as batch:
        batch.drop_column('extra_answer')
