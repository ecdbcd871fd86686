"""The channels the service knows, as plug-ins: sending, rendering and the fallback read these."""
from __future__ import annotations

from datetime import datetime, timedelta

from reminders.channels.base import ChannelSpec

SMS = ChannelSpec(name="sms", contact="phone", template_suffix="sms", is_text=True, carries_calendar=False,
                  counts_segments=True, reports_delivery=True, fallback="email", label="text message")
EMAIL = ChannelSpec(name="email", contact="email", template_suffix="email", is_text=False, carries_calendar=True,
                    counts_segments=False, reports_delivery=False, fallback=None, has_subject=True,
                    label="email")
# WhatsApp through Twilio, to the patient's phone number. A rule with no WhatsApp wording of its
# own uses the SMS template. Outside 24 hours from the patient's last WhatsApp message, Meta lets
# a business send only pre-approved templates: free-form text (a staff member's written answer)
# then goes by SMS.
WHATSAPP = ChannelSpec(name="whatsapp", contact="phone", template_suffix="whatsapp", is_text=True,
                       carries_calendar=False, counts_segments=False, reports_delivery=True, fallback="sms",
                       free_form_window=timedelta(hours=24), template_fallback="sms", label="WhatsApp message")

SPECS: dict[str, ChannelSpec] = {spec.name: spec for spec in (SMS, EMAIL, WHATSAPP)}

# How Twilio addresses a WhatsApp number ("whatsapp:+15550100100"); SMS numbers have no prefix.
ADDRESS_PREFIXES = {WHATSAPP.name: "whatsapp:"}


def spec_for(name: str) -> ChannelSpec:
    """The spec of a channel by its name; a row naming an unknown channel raises KeyError."""
    return SPECS[name]


def reachable(patient, spec: ChannelSpec) -> bool:
    """Whether the patient can be sent a message this way now: the contact detail on file, and
    for a text channel, not opted out of texts."""
    if patient is None or not getattr(patient, spec.contact, None):
        return False
    return not (spec.is_text and patient.sms_opted_out)


def within_free_form_window(spec: ChannelSpec, last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether free-form text (not a template) may go on this channel now: always on a channel with
    no window; on one with a window (WhatsApp's 24 hours), only that long after the patient's own
    last message there, and never to a patient who has not written on it."""
    if spec.free_form_window is None:
        return True
    if last_inbound_at is None:
        return False
    return now - last_inbound_at <= spec.free_form_window
