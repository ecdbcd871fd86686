"""Channels: one `send(message) -> Receipt` per way of reaching a patient."""
from __future__ import annotations

import logging

from reminders.channel_specs import EMAIL, SMS, WHATSAPP
from reminders.channels.base import Attachment, Channel, DeliveryError, OutgoingMessage, ProviderWebhooks, Receipt
from reminders.config import Settings

__all__ = ["Attachment", "Channel", "DeliveryError", "OutgoingMessage", "Receipt", "channels_for", "webhook_providers"]

log = logging.getLogger("reminders.channels")
_announced: set[str] = set()


def _announce(line: str, level: int = logging.INFO) -> None:
    # Once per process and choice: channels_for may run for every task.
    if line not in _announced:
        _announced.add(line)
        log.log(level, line)


def channels_for(settings: Settings) -> dict[str, Channel]:
    """{"sms": ..., "email": ..., "whatsapp": ... when TWILIO_WHATSAPP_FROM is set}: the real
    providers when configured, else the local outbox."""
    # Imported here so that importing the package does not import twilio and smtplib.
    from reminders.channels.local_outbox import LocalOutbox
    from reminders.channels.smtp_email import SMTPEmail
    from reminders.channels.twilio.client import TwilioMessaging

    outbox = settings.effective_outbox_dir
    channels: dict[str, Channel] = {}
    if settings.twilio_configured:
        channels[SMS.name] = TwilioMessaging(settings)
        where = settings.twilio_api_base_url or "https://api.twilio.com"
        _announce(f"SMS goes through Twilio ({where}) from {settings.twilio_from}")
    else:
        channels[SMS.name] = LocalOutbox(SMS.name, outbox, mail_from=settings.mail_from, sender=settings.twilio_from)
        _announce(f"No Twilio settings: SMS goes to the local outbox at {outbox}", logging.WARNING)
    if settings.whatsapp_enabled:
        channels[WHATSAPP.name] = _whatsapp(settings, outbox)
    if settings.smtp_configured:
        channels[EMAIL.name] = SMTPEmail(settings)
        _announce(f"Email goes through SMTP at {settings.smtp_host}:{settings.smtp_port}")
    else:
        channels[EMAIL.name] = LocalOutbox(EMAIL.name, outbox, mail_from=settings.mail_from)
        _announce(f"No SMTP settings: email goes to the local outbox at {outbox}", logging.WARNING)
    return channels


def _whatsapp(settings: Settings, outbox) -> Channel:
    """WhatsApp through the same Twilio account as SMS, from the clinic's WhatsApp sender."""
    from reminders.channels.local_outbox import LocalOutbox
    from reminders.channels.twilio.client import TwilioMessaging

    if not settings.twilio_configured:
        _announce(f"No Twilio settings: WhatsApp goes to the local outbox at {outbox}", logging.WARNING)
        return LocalOutbox(WHATSAPP.name, outbox, mail_from=settings.mail_from, sender=settings.twilio_whatsapp_from)
    _announce(f"WhatsApp goes through Twilio from {settings.twilio_whatsapp_from}")
    return TwilioMessaging(settings, name=WHATSAPP.name, sender=settings.twilio_whatsapp_from,
                           address_prefix=WHATSAPP.address_prefix)


def webhook_providers() -> tuple[type[ProviderWebhooks], ...]:
    """The providers that call us back (their routes, signature checks and forms): the web layer
    registers each one's routes and hands it the requests."""
    from reminders.channels.twilio.webhooks import TwilioWebhooks  # imports the twilio library

    return (TwilioWebhooks,)
