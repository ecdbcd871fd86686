"""An SMTP server on loopback (aiosmtpd) that keeps what it receives and can refuse on request."""
from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

STAGES = ("mail", "rcpt", "data")


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage  # parsed with email.policy.default
    raw: bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, server: "FakeSMTP"):
        self.server = server

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        reply = self.server._take_rejection("mail")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        reply = self.server._take_rejection("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope):
        reply = self.server._take_rejection("data")
        if reply:
            return reply
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        self.server._record(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), parsed, raw))
        return "250 Message accepted for delivery"


class FakeSMTP:
    """No STARTTLS here: point the service at it with SMTP_STARTTLS=false.

    AUTH LOGIN/PLAIN is offered without TLS and accepts `username`/`password`, so a
    test can check what a wrong password does; logging in is optional.
    """

    def __init__(self, username: str = "clinic", password: str = "secret"):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.username, self.password = username, password
        self.messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._rejections: dict[str, list[str]] = {stage: [] for stage in STAGES}
        self._controller = Controller(
            _Handler(self), hostname=self.host, port=self.port,
            server_hostname="fake-smtp.test",  # else the server asks DNS for its own name
            authenticator=self._authenticate, auth_require_tls=False,
            ready_timeout=30.0,
        )

    def start(self) -> "FakeSMTP":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> "FakeSMTP":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reject_next(self, stage: str = "rcpt", code: int = 550,
                    text: str = "5.1.1 Mailbox unavailable", times: int = 1) -> None:
        """Answer the next MAIL, RCPT or DATA with `code text` instead of accepting it."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}")
        with self._lock:
            self._rejections[stage].extend([f"{code} {text}"] * times)

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            for queue in self._rejections.values():
                queue.clear()

    def _take_rejection(self, stage: str) -> str | None:
        with self._lock:
            queue = self._rejections[stage]
            return queue.pop(0) if queue else None

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.messages.append(mail)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == self.username
              and auth_data.password.decode() == self.password)
        return AuthResult(success=ok, handled=False)
