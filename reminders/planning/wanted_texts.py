"""Which texts one visit wants now: the rules' plan for it, less what already went or gives way,
plus what a move or a missed visit calls for. No writes: the planner acts on the result."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.appointments import ACTIVE_STATUSES, AppointmentStatus
from reminders.models.outbox import PENDING_STATUSES, Status
from reminders.outbox import appointment_key
from reminders.timing.budget import VisitText, is_safety, texts_to_keep
from reminders.timing.rules import (
    BEFORE_VISIT_KINDS, MIN_NOTICE, MISSED_VISIT, MISSED_VISIT_MARKED_WITHIN, REMINDED_AGAIN_AFTER_MOVE, REMINDER,
    TOO_LATE, VISIT_MOVED, PlannedMessage, RuleSettings, Visit, default_rules, plan_visit,
)
from reminders.visits.series import planned_length

if TYPE_CHECKING:
    from reminders.planning.planning_run import PlanningRun


# A reminder that went counts for its slot (24 h, 72 h, 7 d before) whatever the series number
# it went under: a visit renumbered after a no-show (or back) is not reminded twice for a slot.
WENT = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.UNKNOWN)


def visit_facts(appointment: Appointment, patient: Patient, rs: RuleSettings) -> Visit:
    series = planned_length(appointment.course, rs.series_length)
    return Visit(appointment.kind, appointment.number_in_course, series, appointment.starts_at, patient.timezone,
                 appointment.status, appointment.duration_minutes, appointment.status_changed_at)


def wanted_messages(appointment: Appointment, patient: Patient, rs: RuleSettings, now: datetime) -> list[PlannedMessage]:
    if appointment.status == AppointmentStatus.CANCELED:
        return []
    visit = visit_facts(appointment, patient, rs)
    wanted = []
    for message in plan_visit(visit, patient.channels(), default_rules(rs), rs):
        if message.rule.kind == REMINDER:
            if appointment.starts_at <= now or appointment.status not in ACTIVE_STATUSES:
                continue
        else:
            if message.planned_for < now - TOO_LATE:  # history imported, a visit entered late
                continue
            if message.rule.name == MISSED_VISIT and now > appointment.ends_at + MISSED_VISIT_MARKED_WITHIN:
                continue  # marked too late for "we missed you today": the staff list shows it
        wanted.append(message)
    return wanted


def reminder_slot(rule_name: str) -> str:
    return rule_name.rsplit("_", 1)[-1]


def without_slots_already_sent(own: list[OutboxMessage], wanted: dict[str, PlannedMessage]) -> dict[str, PlannedMessage]:
    slots: dict[tuple[str, str], set[str]] = {}
    for row in own:
        if row.kind == REMINDER and row.status in WENT:
            slots.setdefault((reminder_slot(row.rule), row.channel), set()).add(row.rule)

    def keep(m: PlannedMessage) -> bool:
        sent = slots.get((reminder_slot(m.rule.name), m.channel), set()) - {m.rule.name}
        # Only the first-visit preparation may follow a reminder of the same slot: a patient told
        # "infusion 2 of 6, as before" who missed infusion 1 needs the full instructions.
        return not sent or (carries_first_visit_preparation(m.rule.name)
                            and not any(carries_first_visit_preparation(rule) for rule in sent))

    return {key: m for key, m in wanted.items() if m.rule.kind != REMINDER or keep(m)}


def carries_first_visit_preparation(rule_name: str) -> bool:
    return rule_name.startswith("first_induction")


def within_text_budget(own: list[OutboxMessage], wanted: dict[str, PlannedMessage],
                       rs: RuleSettings) -> tuple[dict[str, PlannedMessage], set[str]]:
    """The visit's wanted texts within TEXTS_PER_VISIT (reminders.timing.budget), and the keys of
    those that give way. Its texts that went, and its safety texts the rules do not plan (a "visit
    moved" notice, a text's second part), count against it."""
    if rs.texts_per_visit is None:
        return wanted, set()
    went = {row.dedupe_key for row in own if row.status in WENT}
    texts = [VisitText(key, m.rule.name, m.rule.kind, m.channel, went=key in went) for key, m in wanted.items()]
    texts += [VisitText(row.dedupe_key, row.rule, row.kind, row.channel, went=True) for row in own
              if row.dedupe_key not in wanted and (row.status in WENT or row.status in PENDING_STATUSES and is_safety(
                  VisitText(row.dedupe_key, row.rule, row.kind, row.channel)))]
    keep = texts_to_keep(texts, rs.texts_per_visit) | went
    return {key: m for key, m in wanted.items() if key in keep}, set(wanted) - keep


def moved_notices(own: list[OutboxMessage], appointment: Appointment, wanted: dict[str, PlannedMessage],
                  rs: RuleSettings, now: datetime) -> dict[str, PlannedMessage]:
    """One "your visit has moved" message per channel when a reminder already went for another time.

    Keyed by the new time, so each move is told once and a second move tells the newest time.
    """
    if appointment.status not in ACTIVE_STATUSES or appointment.starts_at <= now:
        return {}
    delivered = [row for row in own if row.kind == REMINDER and row.status in (Status.SENT, Status.DELIVERED, Status.UNDELIVERED)]
    channels = {
        row.channel for row in delivered
        if row.dedupe_key in wanted and wanted[row.dedupe_key].planned_for != row.planned_for
    }
    due = rs.quiet.next_allowed(now, appointment.patient.timezone)
    stamp = appointment.starts_at.strftime("%Y%m%dT%H%MZ")
    return {
        f"{appointment_key(appointment.id, VISIT_MOVED.name, channel)}:{stamp}": PlannedMessage(VISIT_MOVED, channel, now, due)
        for channel in channels
    }


def reminders_again_after_move(own: list[OutboxMessage], appointment: Appointment, wanted: dict[str, PlannedMessage],
                               now: datetime) -> dict[str, PlannedMessage]:
    """A 24 h reminder that went for an earlier time of the visit goes again before its new time.

    Only when its new moment is still ahead (the new time is more than 24 h after the notice of
    the move): nearer than that, the notice, which carries the whole preparation, is its reminder.
    Keyed by the new time like the notice, so each time the visit moves to is reminded once.
    """
    if appointment.status not in ACTIVE_STATUSES or appointment.starts_at <= now:
        return {}
    went = [row for row in own if row.kind == REMINDER and row.status in WENT]
    stamp = appointment.starts_at.strftime("%Y%m%dT%H%MZ")
    again = {}
    for m in wanted.values():
        slot = reminder_slot(m.rule.name)
        if m.rule.kind != REMINDER or slot not in REMINDED_AGAIN_AFTER_MOVE or m.planned_for <= now:
            continue
        same_slot = [row for row in went if reminder_slot(row.rule) == slot and row.channel == m.channel]
        if same_slot and all(row.planned_for != m.planned_for for row in same_slot):
            again[f"{appointment_key(appointment.id, m.rule.name, m.channel)}:{stamp}"] = m
    return again


# "We missed you" goes before the preparation of the patient's next visit: that comes at least
# this long after it (the next pass), so that it never arrives first or alone.
OUTREACH_FIRST = timedelta(minutes=1)


def after_missed_visit_outreach(run: "PlanningRun", appointment: Appointment, wanted: dict[str, PlannedMessage],
                                rs: RuleSettings, now: datetime) -> tuple[dict[str, PlannedMessage], set[str]]:
    """Hold this visit's pre-visit texts until the "we missed you" text of an earlier visit still
    to go has gone. Returns the messages and the keys held. A hold that would leave less than
    MIN_NOTICE before the visit is not made (the preparation matters more than the order)."""
    outreach = [text.due_at for text in run.texts_of(appointment.patient_id)
                if text.rule == MISSED_VISIT and text.status in PENDING_STATUSES and text.starts_at is not None
                and text.starts_at < appointment.starts_at]
    if not outreach:
        return wanted, set()
    # It goes at the next pass, or at the end of the patient's quiet hours.
    hold = rs.quiet.next_allowed(max(max(outreach), now), appointment.patient.timezone) + OUTREACH_FIRST
    if hold > appointment.starts_at - MIN_NOTICE:
        return wanted, set()
    result, held = dict(wanted), set()
    for key, m in wanted.items():
        if m.rule.kind in BEFORE_VISIT_KINDS and m.due_at < hold:
            result[key] = PlannedMessage(m.rule, m.channel, m.planned_for, hold)
            held.add(key)
    return result, held
