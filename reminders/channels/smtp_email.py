"""Email over SMTP: plain text, an optional HTML alternative, attachments such as the visit's .ics."""
from __future__ import annotations

import logging
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from reminders.channel_specs import EMAIL
from reminders.channels.base import DeliveryError, OutgoingMessage, Receipt
from reminders.config import Settings

log = logging.getLogger("reminders.channels.email")

_LOCAL_PARTS = re.compile(r"[\w.+=!#$%&'*/?^`{|}~-]+@")


def address_domain(address: str) -> str:
    """What logs may show of an address: its domain only."""
    return "@" + parseaddr(address)[1].rpartition("@")[2]


def _scrub(text: str) -> str:
    # Servers quote the refused address back ("<ann@example.org>: User unknown").
    return _LOCAL_PARTS.sub("…@", text)


def build_email(message: OutgoingMessage, mail_from: str) -> EmailMessage:
    """The whole MIME message. Raises ValueError for an address no header can carry."""
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = message.to
    msg["Subject"] = message.subject or ""
    msg["Date"] = formatdate(usegmt=True)
    # An explicit domain: make_msgid() would otherwise ask DNS for this host's name.
    msg["Message-ID"] = make_msgid(domain=parseaddr(mail_from)[1].rpartition("@")[2] or "localhost")
    msg.set_content(message.body)
    if message.html:
        msg.add_alternative(message.html, subtype="html")
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.split(";")[0].strip().partition("/")
        if maintype == "text":
            # As text, so it goes out as "text/calendar; charset=utf-8" that mail apps open.
            msg.add_attachment(attachment.data.decode("utf-8"), subtype=subtype,
                               filename=attachment.filename)
        else:
            msg.add_attachment(attachment.data, maintype=maintype, subtype=subtype or "octet-stream",
                               filename=attachment.filename)
    return msg


class SMTPEmail:
    name = EMAIL.name

    def __init__(self, settings: Settings):
        if not settings.smtp_configured:
            raise ValueError("SMTPEmail needs SMTP_HOST")
        self._settings = settings
        self.from_address = settings.mail_from

    def send(self, message: OutgoingMessage) -> Receipt:
        where = (message.reference, address_domain(message.to))
        try:
            msg = build_email(message, self._settings.mail_from)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            log.warning("Email %s to %s cannot be built: %s", *where, type(exc).__name__)
            raise DeliveryError(f"Email cannot be built: {type(exc).__name__}",
                                permanent=True, code="invalid-message") from exc
        try:
            self._deliver(msg)
        except DeliveryError:
            raise
        except Exception as exc:
            error = _sorted(exc)
            if error is None:
                raise
            kind = "permanent" if error.permanent else "transient"
            log.warning("Email %s to %s failed (%s): %s", *where, kind, error)
            raise error from exc
        log.info("Email %s to %s accepted by %s", *where, self._settings.smtp_host)
        return Receipt(provider_id=msg["Message-ID"], status="sent")

    def _deliver(self, msg: EmailMessage) -> None:
        s = self._settings
        # Port 465 speaks TLS from the first byte; STARTTLS there would hang until the timeout.
        if s.smtp_port == 465:
            smtp = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        try:
            if s.smtp_starttls and s.smtp_port != 465:
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    log.error("SMTP server %s:%s does not offer STARTTLS; set SMTP_STARTTLS=false "
                              "only if that is intended", s.smtp_host, s.smtp_port)
                    raise DeliveryError("SMTP server does not offer STARTTLS",
                                        permanent=False, code="starttls")
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password)
            try:
                smtp.send_message(msg)
            except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                # The server went quiet after taking the message: it may deliver it.
                raise DeliveryError(f"SMTP server stopped answering during the send: {type(exc).__name__}",
                                    permanent=False, code="timeout", maybe_sent=True) from exc
        finally:
            _close_quietly(smtp)


def _close_quietly(smtp: smtplib.SMTP) -> None:
    # The message is already accepted once send_message returns: a failed QUIT must
    # not turn into an error, or the reminder would be sent twice.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _by_reply_code(code: int, text: bytes | str) -> DeliveryError:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return DeliveryError(f"SMTP {code}: {_scrub(text)}", permanent=500 <= code < 600, code=str(code))


def _sorted(exc: Exception) -> DeliveryError | None:
    """The DeliveryError for an smtplib/socket failure, or None for a bug to let through."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # The clinic's credentials, not the patient's address: retry once fixed.
        log.error("SMTP login refused (%s). Check SMTP_USERNAME and SMTP_PASSWORD; "
                  "emails wait until it works.", exc.smtp_code)
        return DeliveryError(f"SMTP login refused ({exc.smtp_code})", permanent=False, code="auth")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()), (450, b"refused"))
        return _by_reply_code(code, text)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_reply_code(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        # e.g. a non-ASCII address and a server without SMTPUTF8.
        return DeliveryError(f"SMTP server cannot carry this message: {exc}", permanent=True,
                             code="unsupported")
    if isinstance(exc, TimeoutError):
        return DeliveryError("SMTP server timed out", permanent=False, code="timeout")
    if isinstance(exc, (smtplib.SMTPException, OSError)):
        # Disconnected, refused, unreachable, TLS handshake failed: all may pass.
        return DeliveryError(f"SMTP connection failed: {type(exc).__name__}", permanent=False,
                             code="connection")
    return None
