"""What planning a run of visits reads and writes (PlanningRun).

Visits of different patients are planned together: what planning them reads is read once for the
run, and their new rows are written together at its end.
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from reminders.channel_specs import text_channels
from reminders.models import Appointment, OutboxMessage
from reminders.models.outbox import Status
from reminders.outbox import OutboxRow, plan
from reminders.outbox.welcome import plan_welcomes
from reminders.timing.rules import RuleSettings
from reminders.timing.spreading import NON_URGENT_KINDS

RUN_KEY = "reminders.planning.run"  # in Session.info: the run whose visits are being planned
# Outbox rows are written this many to a statement (PostgreSQL takes at most 65,535 parameters
# in one, and a row has 17).
ROWS_PER_INSERT = 500
# A visit's own rows: what the planner reads of each.
OWN_COLUMNS = (OutboxMessage.id, OutboxMessage.appointment_id, OutboxMessage.dedupe_key, OutboxMessage.kind,
               OutboxMessage.rule, OutboxMessage.channel, OutboxMessage.status, OutboxMessage.status_reason,
               OutboxMessage.reason_code, OutboxMessage.planned_for, OutboxMessage.due_at, OutboxMessage.sent_at,
               OutboxMessage.location_id)
# Rows that hold a day against another non-urgent text: all but those that will never go.
NOT_GOING = (Status.CANCELED, Status.SKIPPED, Status.FAILED)


class PlanningRun:
    """Visits of different patients planned together (plan_appointment plans each into the run).

    What planning them reads is read here, once for the run: each visit's own rows, its patient's
    non-urgent texts (one text a day) and visits (duplicate bookings). Rows to cancel or move are
    changed as each visit is planned, in its savepoint; the new rows, welcome texts and the visits'
    own updates wait for `write`, which makes a few statements of them for the whole run instead of
    a dozen a visit.
    """

    def __init__(self, session: Session, appointments: Sequence[Appointment]):
        self.session = session
        self.ids = {appointment.id for appointment in appointments}
        patients = sorted({appointment.patient_id for appointment in appointments})
        self.notes: dict[int, str | None] = {}  # note_duplicate_bookings, by visit
        self.planned_appointments: list[Appointment] = []
        self.written = 0
        self._new_rows: dict[int, list[OutboxRow]] = {}
        self._own = _grouped(session.execute(
            select(*OWN_COLUMNS).where(OutboxMessage.appointment_id.in_(sorted(self.ids))).order_by(OutboxMessage.id)
        ), "appointment_id")
        self._visits = _grouped(session.execute(
            select(Appointment.id, Appointment.patient_id, Appointment.starts_at, Appointment.status,
                   Appointment.needs_planning, Appointment.planning_error)
            .where(Appointment.patient_id.in_(patients))
        ), "patient_id")
        starts = {visit.id: visit.starts_at for visits in self._visits.values() for visit in visits}
        self._texts: dict[int, list[HeldText]] = defaultdict(list)
        for row in session.execute(
            select(OutboxMessage.patient_id, OutboxMessage.appointment_id, OutboxMessage.rule, OutboxMessage.status,
                   OutboxMessage.due_at, OutboxMessage.sent_at)
            .where(OutboxMessage.patient_id.in_(patients), OutboxMessage.channel.in_(text_channels()),
                   OutboxMessage.kind.in_(NON_URGENT_KINDS), OutboxMessage.status.not_in(NOT_GOING))
        ):
            self._texts[row.patient_id].append(HeldText(row.appointment_id, row.rule, row.status, row.due_at,
                                                        row.sent_at, starts.get(row.appointment_id)))

    @contextmanager
    def open(self) -> Iterator["PlanningRun"]:
        """plan_appointment plans into this run while it is open."""
        previous = self.session.info.get(RUN_KEY)
        self.session.info[RUN_KEY] = self
        try:
            yield self
        finally:
            self._restore(previous)

    @contextmanager
    def closed(self) -> Iterator[None]:
        previous = self.session.info.pop(RUN_KEY, None)
        try:
            yield
        finally:
            self._restore(previous)

    def _restore(self, previous: "PlanningRun | None") -> None:
        if previous is None:
            self.session.info.pop(RUN_KEY, None)
        else:
            self.session.info[RUN_KEY] = previous

    def rows_of(self, appointment_id: int) -> list:
        return self._own.get(appointment_id, [])

    def texts_of(self, patient_id: int) -> list["HeldText"]:
        """The patient's non-urgent texts that went or will go (one text a day)."""
        return self._texts.get(patient_id, [])

    def visits_of(self, patient_id: int) -> list:
        return self._visits.get(patient_id, [])

    def planned(self, appointment: Appointment, new_rows: list[OutboxRow]) -> None:
        self.planned_appointments.append(appointment)
        self._new_rows[appointment.id] = new_rows

    def forget(self, appointment: Appointment) -> None:
        if self._new_rows.pop(appointment.id, None) is not None:
            self.planned_appointments.remove(appointment)

    @property
    def planned_ids(self) -> list[int]:
        return [appointment.id for appointment in self.planned_appointments]

    def write(self, rs: RuleSettings, now: datetime) -> int:
        """Write what the run's visits planned: the welcome texts first (each is older than the texts
        it introduces), then the new rows, then the visits themselves as planned. The rows created."""
        visits = self.planned_appointments
        if not visits:
            return 0
        welcomes = plan_welcomes(self.session, [(a.patient, self._new_rows[a.id]) for a in visits], rs.quiet, now)
        created = _insert(self.session, welcomes, now)
        created += _insert(self.session, [row for a in visits for row in self._new_rows[a.id]], now)
        table = Appointment.__table__
        self.session.execute(
            update(table).where(table.c.id == bindparam("visit_id"))
            .values(needs_planning=False, planning_error=bindparam("note")),
            [{"visit_id": a.id, "note": self.notes.get(a.id)} for a in visits],
        )
        for appointment in visits:  # what this session holds agrees with what was written
            set_committed_value(appointment, "needs_planning", False)
            set_committed_value(appointment, "planning_error", self.notes.get(appointment.id))
        self.written = len(visits)
        return created


@dataclass(frozen=True)
class HeldText:
    """A non-urgent text of the patient, as spread_non_urgent weighs it against a new one."""

    appointment_id: int | None
    rule: str
    status: str
    due_at: datetime
    sent_at: datetime | None
    starts_at: datetime | None  # of its visit


def _insert(session: Session, rows: list[OutboxRow], now: datetime) -> int:
    return sum(len(plan(session, rows[start:start + ROWS_PER_INSERT], now))
               for start in range(0, len(rows), ROWS_PER_INSERT))


def _grouped(result, key: str) -> dict[int, list]:
    groups: dict[int, list] = defaultdict(list)
    for row in result:
        groups[getattr(row, key)].append(row)
    return groups


def run_of(session: Session) -> PlanningRun:
    """The run the visit in hand is planned into (plan_appointment opens one)."""
    return session.info[RUN_KEY]
