"""What sending reads off a channel's spec about a patient and the moment (the specs themselves
are in reminders.channel_specs, where the layers below read them too)."""
from __future__ import annotations

from datetime import datetime

from reminders.channel_specs import ChannelSpec


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
