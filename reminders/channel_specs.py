"""What a channel is: one ChannelSpec per way of reaching a patient, and everything read off them.

The rest of the service decides by a channel's spec, never by its name: which template files a
message is rendered from, whether it is a text (consent, check-ins, replies, the welcome), the
patient's detail it goes to, how the provider writes its addresses, who to wait for when the
provider is down, where the provider calls back. A new channel is a new spec in SPECS and a
provider class with `send` (reminders.channels).

It sits at the bottom of the house (it imports nothing of ours) so that the models, consent and
the timing rules read the same specs as sending and rendering.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class TemplatePart:
    """One file of a message's template: `<template><suffix>` ("welcome.sms.j2")."""

    name: str  # the part as the templates admin shows and previews it: "sms", "subject", "html"
    suffix: str  # ".sms.j2"
    label: str  # in staff's words: "SMS", "Email HTML"


@dataclass(frozen=True)
class ChannelSpec:
    """What the rest of the service needs to know about a way of reaching a patient: sending,
    rendering, consent and the fallback read these, never the channel's name."""

    name: str  # the outbox row's channel
    contact: str  # the patient's detail it is sent to: "phone" or "email"
    template_suffix: str  # a text's template is "<template>.<suffix>.j2" (email: its `parts`)
    # The template files of one message, in the order the templates admin lists them.
    parts: tuple[TemplatePart, ...]
    is_text: bool  # a conversation: check-ins, replies, the welcome and opt-out belong to it
    carries_calendar: bool  # a visit reminder may attach the visit as a calendar entry
    counts_segments: bool  # the body is billed in SMS segments (stored on the row)
    reports_delivery: bool  # the provider calls back with delivery reports (status callback URL)
    fallback: str | None  # the channel a message goes by when it cannot go this way
    has_subject: bool = False  # a subject, a plain-text body and an optional HTML body (email)
    # Free-form text (a written answer, not a template) may go only this long after the
    # patient's own last message on the channel (WhatsApp's 24-hour session); None: any time.
    free_form_window: timedelta | None = None
    template_fallback: str | None = None  # the suffix used when a rule has no template of its own
    label: str = ""  # in staff's words: "text message", "email"
    short_label: str = ""  # in a word, after a message's name: "Welcome text (WhatsApp)"
    plural: str = ""  # what stops going out while the provider is down: "Text messages"
    # Reached only by a patient who chose it (not every phone has WhatsApp); otherwise any patient
    # with the contact detail can be reached this way.
    chosen_only: bool = False
    # How the provider writes a patient's address on this channel ("whatsapp:+15550100100").
    address_prefix: str = ""
    provider: str = ""  # the provider by its role, for logs and held rows: "the SMS provider"
    provider_label: str = ""  # who staff wait for in an outage: "Twilio", "the email server"
    # The path the provider posts delivery reports to, under PUBLIC_BASE_URL (its console's setting).
    status_callback_path: str | None = None

    @property
    def words(self) -> str:
        return self.label or self.name

    @property
    def provider_title(self) -> str:
        """"SMS provider", "Email server": the provider as a heading."""
        role = (self.provider or f"the {self.name} provider").removeprefix("the ")
        return role[:1].upper() + role[1:]


def _text_part(suffix: str, label: str) -> tuple[TemplatePart, ...]:
    return (TemplatePart(suffix, f".{suffix}.j2", label),)


SMS = ChannelSpec(
    name="sms", contact="phone", template_suffix="sms", parts=_text_part("sms", "SMS"), is_text=True,
    carries_calendar=False, counts_segments=True, reports_delivery=True, fallback="email", label="text message",
    short_label="text", plural="Text messages", provider="the SMS provider", provider_label="Twilio",
    status_callback_path="/twilio/status")
EMAIL = ChannelSpec(
    name="email", contact="email", template_suffix="email",
    parts=(TemplatePart("subject", ".subject.j2", "Subject"), TemplatePart("text", ".email.txt.j2", "Email text"),
           TemplatePart("html", ".email.html.j2", "Email HTML")),
    is_text=False, carries_calendar=True, counts_segments=False, reports_delivery=False, fallback=None,
    has_subject=True, label="email", short_label="email", plural="Emails", provider="the email server",
    provider_label="the email server")
# WhatsApp through Twilio, to the patient's phone number. A rule with no WhatsApp wording of its
# own uses the SMS template. Outside 24 hours from the patient's last WhatsApp message, Meta lets
# a business send only pre-approved templates: free-form text (a staff member's written answer)
# then goes by SMS.
WHATSAPP = ChannelSpec(
    name="whatsapp", contact="phone", template_suffix="whatsapp", parts=_text_part("whatsapp", "WhatsApp"),
    is_text=True, carries_calendar=False, counts_segments=False, reports_delivery=True, fallback="sms",
    free_form_window=timedelta(hours=24), template_fallback="sms", label="WhatsApp message",
    short_label="WhatsApp", plural="WhatsApp messages", chosen_only=True, address_prefix="whatsapp:",
    provider="the WhatsApp provider", provider_label="Twilio", status_callback_path="/twilio/status")

# In the order staff see them (the templates admin lists each template's files in this order).
SPECS: dict[str, ChannelSpec] = {spec.name: spec for spec in (SMS, WHATSAPP, EMAIL)}


def spec_for(name: str) -> ChannelSpec:
    """The spec of a channel by its name; a row naming an unknown channel raises KeyError."""
    return SPECS[name]


def all_specs() -> tuple[ChannelSpec, ...]:
    return tuple(SPECS.values())


def text_channels() -> tuple[str, ...]:
    """The channels a patient texts back on: check-ins, replies, the welcome and opt-out belong to them."""
    return tuple(spec.name for spec in SPECS.values() if spec.is_text)


def is_text_channel(name: str | None) -> bool:
    spec = SPECS.get(name or "")
    return spec is not None and spec.is_text


def channels_by_contact(contact: str) -> frozenset[str]:
    """The channels that reach a patient's detail: "phone" -> SMS and WhatsApp."""
    return frozenset(spec.name for spec in SPECS.values() if spec.contact == contact)


def template_parts() -> tuple[TemplatePart, ...]:
    """Every part of every channel's templates, channel by channel."""
    return tuple(part for spec in SPECS.values() for part in spec.parts)


def template_suffixes() -> dict[str, str]:
    """{"sms": ".sms.j2", ..., "html": ".email.html.j2"}: each template part's file suffix."""
    return {part.name: part.suffix for part in template_parts()}


def spec_of_part(part: str) -> ChannelSpec | None:
    """The channel a template part belongs to ("subject" -> email)."""
    return next((spec for spec in SPECS.values() if any(p.name == part for p in spec.parts)), None)


def without_address_prefix(address: str) -> str:
    """A provider's address as the patient's number: "whatsapp:+1555..." -> "+1555..."."""
    for spec in SPECS.values():
        if spec.address_prefix and address.lower().startswith(spec.address_prefix):
            return address[len(spec.address_prefix):]
    return address


def channel_of_address(address: str, default: str = SMS.name) -> str:
    """The channel a provider's address names by its prefix ("whatsapp:+1..." -> whatsapp)."""
    lowered = address.strip().lower()
    return next((spec.name for spec in SPECS.values() if spec.address_prefix
                 and lowered.startswith(spec.address_prefix)), default)
