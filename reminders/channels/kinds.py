"""The channels the service knows, as plug-ins: sending, rendering and the fallback read these."""
from __future__ import annotations

from reminders.channels.base import ChannelSpec

SMS = ChannelSpec(name="sms", contact="phone", template_suffix="sms", is_text=True, carries_calendar=False,
                  counts_segments=True, reports_delivery=True, fallback="email", label="text message")
EMAIL = ChannelSpec(name="email", contact="email", template_suffix="email", is_text=False, carries_calendar=True,
                    counts_segments=False, reports_delivery=False, fallback=None, has_subject=True,
                    label="email")

SPECS: dict[str, ChannelSpec] = {spec.name: spec for spec in (SMS, EMAIL)}


def spec_for(name: str) -> ChannelSpec:
    """The spec of a channel by its name; a row naming an unknown channel raises KeyError."""
    return SPECS[name]


def reachable(patient, spec: ChannelSpec) -> bool:
    """Whether the patient can be sent a message this way now: the contact detail on file, and
    for a text channel, not opted out of texts."""
    if patient is None or not getattr(patient, spec.contact, None):
        return False
    return not (spec.is_text and patient.sms_opted_out)
