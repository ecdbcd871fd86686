"""The message a row sends: rendered in its location's words, split into texts when it does not fit
one, and written on the row (with its sender) before the provider is asked."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from reminders.calendar import visit_ics, visit_words
from reminders.channels import Attachment, DeliveryError, OutgoingMessage
from reminders.channel_specs import spec_for
from reminders.config import Settings
from reminders.inbound import checkin_links
from reminders.measures.questionnaires import for_message as questionnaire_for_message
from reminders.missed_visits import next_visit_context
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.outbox import Kind
from reminders.outbox import moves
from reminders.outbox.rows import plan_following_parts
from reminders.rendering import TemplateStore, message_context, message_templates, render, template_language, text_parts
from reminders.sending.gate import finish_unsent
from reminders.text_segments import sms_length
from reminders.timing.rules import MISSED_VISIT, REMINDER, Rule, RuleSettings, rules_by_name
from reminders.visits.series import planned_length

# Messages whose text may go as several texts when it does not fit one (reminders.rendering.
# text_parts). A question (a check-in, a questionnaire) stays one text: its answer refers to it.
SPLIT_KINDS = (Kind.REMINDER, Kind.NUDGE)


@dataclass(frozen=True)
class From:
    """Where a message goes out for and from: its location and that location's sender."""

    location_id: int | None
    address: str

    def write_on(self, row: OutboxMessage) -> None:
        if row.location_id != self.location_id:
            row.location_id = self.location_id
        if row.from_address != self.address:  # a following text was planned with its sender
            row.from_address = self.address


def location_of(row: OutboxMessage, appointment: Appointment | None) -> int | None:
    """A row's location: its visit's when it has one, else its own (a welcome, a staff alert)."""
    return appointment.location_id if appointment is not None else row.location_id


def may_split(settings: Settings, row: OutboxMessage, spec) -> bool:
    """Whether this row's text goes as several when it does not fit one: a rule's text (never
    a written one) of a kind that may, on a channel billed by segments."""
    return (spec.counts_segments and row.kind in SPLIT_KINDS
            and row.rule in rules_by_name(RuleSettings.from_settings(settings)))


def status_callback(settings: Settings, row: OutboxMessage, spec) -> str | None:
    if spec.reports_delivery and spec.status_callback_path and settings.public_base_url:
        return f"{settings.public_base_url.rstrip('/')}{spec.status_callback_path}?outbox_id={row.id}"
    return None


def write_message(session: Session, settings: Settings, store: TemplateStore, row: OutboxMessage,
                  patient: Patient | None, appointment: Appointment | None, now: datetime, where: Settings,
                  sender: From) -> OutgoingMessage | str:
    """Render a row that goes and write what it says on it (its first text, the others planned as
    the texts that follow): the message, or `skipped` when its questionnaire has nothing to ask."""
    spec = spec_for(row.channel)
    extra = {}
    if row.kind == Kind.QUESTIONNAIRE and patient is not None:
        extra = questionnaire_for_message(session, where, row.rule, patient, appointment, spec, now)
        if isinstance(extra, str):
            return finish_unsent(row, extra)
    if row.kind == Kind.CHECKIN and not spec.is_text and patient is not None:
        extra = checkin_links.for_message(session, where, row, patient, now)  # its answer page
    split = may_split(settings, row, spec)
    message = render_row(settings, store, row, patient, appointment, where, extra, split)
    parts = [message.body]
    if split:
        parts = text_parts(message.body) or [message.body]
        message = replace(message, body=parts[0])
    sender.write_on(row)  # with the words: one UPDATE of the row, not a second
    moves.write_rendered(row, to=message.to, subject=message.subject, body=message.body,
                         segments=sms_length(message.body).segments if spec.counts_segments else row.segments)
    if split:
        # The texts after this one are planned now, with its own words, before the provider is asked.
        plan_following_parts(session, row, parts[1:], [sms_length(part).segments for part in parts[1:]], now)
    return message


def following_message(settings: Settings, row: OutboxMessage, before: OutboxMessage, sender: From) -> OutgoingMessage:
    """A following text goes with the words written on it when the text before it was rendered."""
    callback = status_callback(settings, row, spec_for(row.channel))
    sender.write_on(row)
    return OutgoingMessage(to=row.to_address or before.to_address, body=row.body, status_callback=callback,
                           reference=str(row.id))


def render_row(settings: Settings, store: TemplateStore, row: OutboxMessage, patient: Patient | None,
               appointment: Appointment | None, where: Settings, extra: dict | None = None,
               split: bool = False) -> OutgoingMessage:
    """The message one row sends, in its location's words (`where`: its settings). `extra`:
    context of the row's own kind (a questionnaire's link)."""
    rules = rules_by_name(RuleSettings.from_settings(settings))
    return compose(settings, store, row, patient, appointment, rules.get(row.rule), where, extra or {}, split)


def compose(settings: Settings, store: TemplateStore, row: OutboxMessage, patient: Patient | None,
            appointment: Appointment | None, rule: Rule | None, where: Settings, extra: dict | None = None,
            split: bool = False) -> OutgoingMessage:
    spec = spec_for(row.channel)
    callback = status_callback(settings, row, spec)
    to = row.to_address
    if not to and patient is not None:
        to = getattr(patient, spec.contact)
    if not to:
        raise DeliveryError(f"no {row.channel} address on file", permanent=True, code="no_address")
    if row.body is not None and rule is None:  # written when planned: staff alerts, replies
        return OutgoingMessage(to=to, body=row.body, subject=row.subject, status_callback=callback, reference=str(row.id))
    if rule is None:
        raise DeliveryError(f"no rule named {row.rule!r}", permanent=True, code="unknown_rule")
    series = planned_length(appointment.course if appointment else None, where)
    names = message_templates(store, rule.template, patient.language if patient else None, spec)
    language = template_language(names["text"] if spec.has_subject else names["body"])
    context = message_context(where, patient, appointment, series, language) | (extra or {})
    if rule.name == MISSED_VISIT and appointment is not None and patient is not None:
        context["next_visit"] = next_visit_context(where, patient, appointment, language)
    if not spec.has_subject:
        return OutgoingMessage(to=to, body=render(store, names["body"], context, keep_break=split),
                               status_callback=callback, reference=str(row.id))
    attachments = ()
    if appointment is not None and rule.kind == REMINDER and spec.carries_calendar:
        attachments = (calendar_entry(appointment, language, where),)
    return OutgoingMessage(
        to=to,
        subject=render(store, names["subject"], context),
        body=render(store, names["text"], context),
        html=render(store, names["html"], context) if names["html"] else None,
        attachments=attachments,
        reference=str(row.id),
    )


def calendar_entry(appointment: Appointment, language: str, where: Settings) -> Attachment:
    title, description = visit_words(where.clinic_name, where.clinic_phone, language)
    data = visit_ics(
        uid=f"appointment-{appointment.id}@clinic-reminders",
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        summary=title,
        location=appointment.location or where.clinic_address,
        description=description,
    )
    return Attachment("visit.ics", "text/calendar", data)
