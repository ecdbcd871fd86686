"""The clinic's messaging rules: which messages a visit needs, when, and by which channel.

Pure: no database, no clock. Everything is passed in. Whether a message still should go when it
is due is reminders.timing.send_checks; one non-urgent text a day, reminders.timing.spreading;
retrying through a provider's outage, reminders.timing.retries.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

from reminders.channel_specs import is_text_channel, text_channels
from reminders.models.outbox import ChannelName, Kind
from reminders.timing.quiet_hours import QuietHours, local_moment

REMINDER, CHECKIN, NUDGE = Kind.REMINDER, Kind.CHECKIN, Kind.NUDGE
QUESTIONNAIRE = Kind.QUESTIONNAIRE
# Messages about a visit still to come: no use once it is canceled or has started.
BEFORE_VISIT_KINDS = (REMINDER, QUESTIONNAIRE)
ALERT, REPLY = Kind.ALERT, Kind.REPLY
# Staff alerts and written replies are about a person now: no quiet hours, no visit checks.
UNGATED_KINDS = (ALERT, REPLY)
# A reminder deferred past quiet hours must still leave the patient this long before the visit.
MIN_NOTICE = timedelta(hours=1)
# A weekly check-in is dropped when the next visit is this close: that visit brings its own.
NEXT_VISIT_TAKES_OVER = timedelta(days=2)
# A check-in or nudge this late (the service was down) would only confuse the patient.
TOO_LATE = timedelta(hours=36)
# "We missed you today" marked later than this after the visit ended is not sent: staff call instead.
MISSED_VISIT_MARKED_WITHIN = timedelta(days=1)

MISSED_VISIT, PLAN_MAINTENANCE, REBOOK_NUDGE = "missed_visit", "plan_maintenance", "rebook_nudge"
MEASURES, MEASURES_REMINDER = "measures", "measures_reminder"
CARING_CONTACT = "caring_contact"  # caring_contact_1 .. _N: one a week after the induction series
HELD, NOT_HELD = ("completed",), ("canceled", "no_show")


@dataclass(frozen=True)
class RuleSettings:
    series_length: int = 6
    rebook_after: timedelta = timedelta(hours=48)  # induction: the "not booked" nudge
    maintenance_interval_days: int = 42
    maintenance_nudge_days_before: int = 7
    checkin_hour: int = 10
    # After this long past its end, a visit nobody marked counts as attended; None: never.
    unmarked_counts_as_attended_after: timedelta | None = timedelta(hours=2)
    quiet: QuietHours = field(default_factory=QuietHours)
    # TWILIO_WHATSAPP_FROM is set: a patient who prefers WhatsApp gets their texts there.
    whatsapp_enabled: bool = False
    # Questionnaires (reminders.measures): before these infusions (past the series: its last) and
    # before each maintenance visit; the link this long before, one reminder this long before.
    measures_enabled: bool = True
    measures_infusions: tuple[int, ...] = (1, 3, 6)
    measures_before_maintenance: bool = True
    measures_before: timedelta = timedelta(hours=48)
    measures_reminder_before: timedelta = timedelta(hours=30)
    # Caring contacts after the induction series: this many weeks at most (0: none).
    caring_contact_weeks: int = 8
    # At most this many texts per visit (reminders.timing.budget); None: no budget.
    texts_per_visit: int | None = None
    # Staff may undo a no-show this long after marking it: "we missed you" waits for it.
    no_show_undo: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings) -> "RuleSettings":
        hours = settings.unmarked_visits_count_as_attended_after_hours
        return cls(
            series_length=settings.induction_series_length,
            rebook_after=settings.induction_rebook_after,
            maintenance_interval_days=settings.maintenance_interval_days,
            maintenance_nudge_days_before=settings.maintenance_nudge_days_before,
            checkin_hour=settings.checkin_hour,
            unmarked_counts_as_attended_after=timedelta(hours=hours) if hours else None,
            quiet=QuietHours(settings.quiet_hours_start, settings.quiet_hours_end),
            whatsapp_enabled=settings.whatsapp_enabled,
            measures_enabled=settings.measures_enabled,
            measures_infusions=tuple(settings.measures_infusions),
            measures_before_maintenance=settings.measures_before_maintenance,
            measures_before=timedelta(hours=settings.measures_hours_before),
            measures_reminder_before=timedelta(hours=settings.measures_reminder_hours_before),
            caring_contact_weeks=settings.caring_contact_weeks,
            texts_per_visit=settings.texts_per_visit,
            no_show_undo=timedelta(minutes=settings.no_show_undo_minutes),
        )

    @property
    def text_channels(self) -> frozenset[str]:
        """The channels texts may go by at this clinic: SMS, and WhatsApp when it is switched on."""
        return frozenset(text_channels()) if self.whatsapp_enabled else frozenset({ChannelName.SMS})

    @property
    def maintenance_nudge_after_days(self) -> int:
        """Days after a maintenance visit that its booking nudge goes: a week before the interval ends."""
        return max(self.maintenance_interval_days - self.maintenance_nudge_days_before, 1)


@dataclass(frozen=True)
class Visit:
    """What the rules need to know of one appointment."""

    kind: str  # induction | maintenance
    number: int  # its place in the course's induction series (1 = first infusion)
    series_length: int
    starts_at: datetime
    zone: str  # the patient's IANA time zone
    status: str = "scheduled"
    duration_minutes: int = 60
    status_changed_at: datetime | None = None  # when staff marked it (None: not by staff)

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def is_last_induction(self) -> bool:
        return self.kind == "induction" and self.number >= self.series_length


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str  # reminder | checkin | nudge
    template: str  # templates/<template>.sms.j2, .email.txt.j2, .email.html.j2, .subject.j2
    channels: frozenset[str]
    applies: Callable[[Visit, RuleSettings], bool]
    time_for: Callable[[Visit, RuleSettings], datetime]
    # A check-in goes only by the channels it names; other rules fall back to what the patient
    # can receive.
    strict_channels: bool = False
    # By text to a patient who has a text channel, by email only to one who has none (a check-in:
    # its email links to the page it is answered on, reminders.inbound.checkin_links).
    email_without_text: bool = False


@dataclass(frozen=True)
class PlannedMessage:
    rule: Rule
    channel: str
    planned_for: datetime  # the rule's own time
    due_at: datetime  # when it may go: planned_for moved out of quiet hours


def _before(delta: timedelta):
    return lambda visit, _rs: visit.starts_at - delta


def _local_days_after(days: int):
    def time_for(visit: Visit, rs: RuleSettings) -> datetime:
        tz = ZoneInfo(visit.zone)
        day = visit.starts_at.astimezone(tz).date() + timedelta(days=days)
        return local_moment(day, datetime.min.time().replace(hour=rs.checkin_hour), tz)

    return time_for


def _rebook_time(visit: Visit, rs: RuleSettings) -> datetime:
    if visit.kind == "induction":
        # Infusions are two or three days apart: the nudge goes as soon as the next one is late.
        return visit.starts_at + rs.rebook_after
    return _local_days_after(rs.maintenance_nudge_after_days)(visit, rs)


def _missed_visit_time(visit: Visit, rs: RuleSettings) -> datetime:
    """The visit's end, or once the undo window of staff's no-show mark has closed."""
    if visit.status_changed_at is None:
        return visit.ends_at
    return max(visit.ends_at, visit.status_changed_at + rs.no_show_undo)


def _is_first_induction(visit: Visit, _rs) -> bool:
    return visit.kind == "induction" and visit.number == 1


def _is_later_induction(visit: Visit, _rs) -> bool:
    return visit.kind == "induction" and visit.number > 1


def _is_maintenance(visit: Visit, _rs) -> bool:
    return visit.kind == "maintenance"


def _needs_rebooking_nudge(visit: Visit, _rs) -> bool:
    return visit.kind == "maintenance" or visit.number < visit.series_length


def _was_missed(visit: Visit, _rs) -> bool:
    return visit.status == "no_show"


def _ends_induction(visit: Visit, _rs) -> bool:
    return visit.is_last_induction


def takes_questionnaire(visit: Visit, rs: RuleSettings) -> bool:
    """A visit a questionnaire comes before: the infusions the clinic measures at (a number past
    the series means its last infusion), and every maintenance visit."""
    if not rs.measures_enabled:
        return False
    if visit.kind == "maintenance":
        return rs.measures_before_maintenance
    wanted = {min(number, visit.series_length) for number in rs.measures_infusions}
    return visit.kind == "induction" and visit.number in wanted


def _measures_time(visit: Visit, rs: RuleSettings) -> datetime:
    return visit.starts_at - rs.measures_before


def _measures_reminder_time(visit: Visit, rs: RuleSettings) -> datetime:
    return visit.starts_at - min(rs.measures_reminder_before, rs.measures_before - timedelta(hours=1))


SMS, EMAIL = frozenset({ChannelName.SMS}), frozenset({ChannelName.EMAIL})
BOTH = SMS | EMAIL


def default_rules(rs: RuleSettings) -> tuple[Rule, ...]:
    always = lambda _v, _rs: True  # noqa: E731
    weeks = max(rs.maintenance_interval_days // 7, 1)
    weekly = tuple(
        Rule(f"checkin_weekly_{week}", CHECKIN, weekly_checkin_template(week), BOTH, _is_maintenance,
             _local_days_after(7 * week), strict_channels=True, email_without_text=True)
        for week in range(1, weeks + 1)
    )
    # Nudges in kind: each stops once any next visit is booked (reason_not_to_send).
    caring = tuple(
        Rule(f"{CARING_CONTACT}_{week}", NUDGE, caring_contact_template(week), SMS, _ends_induction,
             _local_days_after(7 * week))
        for week in range(1, rs.caring_contact_weeks + 1)
    )
    return (
        Rule("first_induction_72h", REMINDER, "first_induction_72h", BOTH, _is_first_induction, _before(timedelta(hours=72))),
        Rule("first_induction_24h", REMINDER, "first_induction_24h", SMS, _is_first_induction, _before(timedelta(hours=24))),
        Rule("induction_24h", REMINDER, "induction_24h", SMS, _is_later_induction, _before(timedelta(hours=24))),
        Rule("maintenance_7d", REMINDER, "maintenance_7d", BOTH, _is_maintenance, _before(timedelta(days=7))),
        Rule("maintenance_24h", REMINDER, "maintenance_24h", SMS, _is_maintenance, _before(timedelta(hours=24))),
        Rule("checkin_day_after", CHECKIN, "checkin_day_after", BOTH, always, _local_days_after(1), strict_channels=True,
             email_without_text=True),
        *weekly,
        Rule(REBOOK_NUDGE, NUDGE, "rebook_nudge", SMS, _needs_rebooking_nudge, _rebook_time),
        # The day after the check-in's day: spread_day moves it off the check-in's day.
        Rule(PLAN_MAINTENANCE, NUDGE, "plan_maintenance", SMS, _ends_induction, _local_days_after(1)),
        Rule(MISSED_VISIT, NUDGE, "missed_visit", SMS, _was_missed, _missed_visit_time),
        *caring,
        Rule(MEASURES, QUESTIONNAIRE, "questionnaire", BOTH, takes_questionnaire, _measures_time),
        Rule(MEASURES_REMINDER, QUESTIONNAIRE, "questionnaire_reminder", SMS, takes_questionnaire,
             _measures_reminder_time),
    )


# The weekly check-ins between maintenance visits take turns with these texts, so the patient
# does not read the same words six weeks running.
WEEKLY_CHECKIN_TEMPLATES = ("checkin_weekly", "checkin_weekly_b", "checkin_weekly_c")


def weekly_checkin_template(week: int) -> str:
    return WEEKLY_CHECKIN_TEMPLATES[(week - 1) % len(WEEKLY_CHECKIN_TEMPLATES)]


# Caring contacts take turns with these wordings, so that each week reads as a person's note.
CARING_CONTACT_TEMPLATES = ("caring_contact", "caring_contact_b", "caring_contact_c", "caring_contact_d")


def caring_contact_template(week: int) -> str:
    return CARING_CONTACT_TEMPLATES[(week - 1) % len(CARING_CONTACT_TEMPLATES)]


def is_caring_contact(rule_name: str) -> bool:
    return rule_name.startswith(CARING_CONTACT)


def asks_for_a_score(kind: str, rule_name: str, channel: str) -> bool:
    """A text whose number in answer is a check-in score: a check-in, or a caring contact by text
    (its mood question is optional, but a number sent back is that week's mood)."""
    return kind == CHECKIN or (is_caring_contact(rule_name) and is_text_channel(channel))


# Not planned by time: sent once per new time when a visit moves after a reminder already went
# for the old one. It carries the full preparation for the visit as it is now. A 24 h reminder
# that went for the old time goes again for the new one when the new 24 h moment is still ahead
# of the notice (reminders.planning.planner.reminders_again_after_move); within 24 h of the
# visit the notice is its reminder.
VISIT_MOVED = Rule("visit_moved", REMINDER, "visit_moved", BOTH, lambda _v, _rs: False, lambda v, _rs: v.starts_at)
REMINDED_AGAIN_AFTER_MOVE = ("24h",)  # the reminder slots (reminder_slot) that go again at a visit's new time


# Not planned by visit: once per patient and number, before their first text (reminders.outbox.welcome).
WELCOME = Rule("welcome", "welcome", "welcome", SMS, lambda _v, _rs: False, lambda v, _rs: v.starts_at,
               strict_channels=True)


def rules_by_name(rs: RuleSettings) -> dict[str, Rule]:
    return {rule.name: rule for rule in (*default_rules(rs), VISIT_MOVED, WELCOME)}


def texting_by(reachable: set[str], rs: RuleSettings) -> set[str]:
    """The patient's channels as this clinic can serve them: a text channel it has not switched on
    (WhatsApp without TWILIO_WHATSAPP_FROM) is served by SMS."""
    off = {c for c in reachable if is_text_channel(c) and c not in rs.text_channels}
    return (reachable - off) | ({ChannelName.SMS.value} if off else set())


def choose_channels(rule: Rule, reachable: set[str]) -> set[str]:
    """The channels one rule's message goes by. A rule says SMS for "by text": it goes on the text
    channel the patient is reached by (WhatsApp for a patient who chose it)."""
    texts = {c for c in reachable if is_text_channel(c)}
    wanted = set(rule.channels)
    if texts and wanted & set(text_channels()):
        wanted = (wanted - set(text_channels())) | texts
    if texts and rule.email_without_text:
        wanted.discard(ChannelName.EMAIL)
    chosen = wanted & reachable
    if chosen or rule.strict_channels:
        return chosen
    return set(reachable)


def due_time(rule: Rule, planned_for: datetime, visit: Visit, quiet: QuietHours) -> datetime:
    due = quiet.next_allowed(planned_for, visit.zone)
    if rule.kind in BEFORE_VISIT_KINDS and due > visit.starts_at - MIN_NOTICE:
        # Waiting for morning would be too late for an early visit: go the evening before.
        due = min(planned_for, quiet.last_allowed_before(planned_for, visit.zone))
    return due


def follows_attendance(rule: Rule) -> bool:
    """A check-in, the end-of-induction prompt or a caring contact assumes the patient came."""
    return rule.kind == CHECKIN or rule.name == PLAN_MAINTENANCE or is_caring_contact(rule.name)


def counts_as_attended_at(status: str, ends_at: datetime, rs: RuleSettings) -> datetime | None:
    """From when a visit counts as attended: its end once staff marked it completed; for a visit
    nobody marked, its end plus the clinic's allowance (UNMARKED_VISITS_COUNT_AS_ATTENDED_AFTER_HOURS);
    None when it does not (missed, canceled, or the clinic waits for staff to mark it)."""
    if status in HELD:
        return ends_at
    if status in ("scheduled", "confirmed") and rs.unmarked_counts_as_attended_after is not None:
        return ends_at + rs.unmarked_counts_as_attended_after
    return None


def is_unmarked(status: str, ends_at: datetime, now: datetime) -> bool:
    """Over, and nobody has said whether the patient came: staff should mark it."""
    return status in ("scheduled", "confirmed") and ends_at <= now


def plan_visit(visit: Visit, reachable: set[str], rules: tuple[Rule, ...], rs: RuleSettings) -> list[PlannedMessage]:
    reachable = texting_by(reachable, rs)
    planned = []
    for rule in rules:
        if not rule.applies(visit, rs):
            continue
        if visit.status in NOT_HELD and rule.kind != REMINDER and rule.name not in (MISSED_VISIT, REBOOK_NUDGE):
            continue  # no check-in after a visit that did not happen; "we missed you" and the booking nudge
        planned_for = rule.time_for(visit, rs)
        if follows_attendance(rule):
            attended = counts_as_attended_at(visit.status, visit.ends_at, rs)
            if attended is None:
                continue  # waits for staff to mark the visit completed (planned again then)
            planned_for = max(planned_for, attended)
        due = due_time(rule, planned_for, visit, rs.quiet)
        for channel in sorted(choose_channels(rule, reachable)):
            planned.append(PlannedMessage(rule, channel, planned_for, due))
    return planned
