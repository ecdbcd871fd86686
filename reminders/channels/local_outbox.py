"""The channel that needs no configuration: messages land in a folder staff can read."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

from reminders.channel_specs import SPECS
from reminders.channels.base import OutgoingMessage, Receipt
from reminders.channels.smtp_email import build_email

log = logging.getLogger("reminders.channels.outbox")

LOG_NAME = "messages.jsonl"
DEFAULT_MAIL_FROM = "Clinic reminders <reminders@localhost>"


class LocalOutbox:
    def __init__(self, channel_name: str, directory: Path | str, *, mail_from: str = DEFAULT_MAIL_FROM,
                 sender: str = ""):
        self.name = channel_name
        self.directory = Path(directory)
        self._mail_from = mail_from
        # What a message would have gone from: MAIL_FROM for email, the sending number for a text
        # (empty when none is set).
        self.from_address = mail_from if self._is_email else sender

    @property
    def _is_email(self) -> bool:
        """A channel with a subject is kept as an .eml file too; a text only in the log."""
        spec = SPECS.get(self.name)
        return spec is not None and spec.has_subject

    def send(self, message: OutgoingMessage) -> Receipt:
        self.directory.mkdir(parents=True, exist_ok=True)
        message_id = f"local-{uuid.uuid4().hex}"
        if self._is_email:
            self._write_eml(message_id, message)
        record = {
            "id": message_id,
            "channel": self.name,
            "from": self.from_address,
            "to": message.to,
            "subject": message.subject,
            "body": message.body,
            "html": message.html,
            "attachments": [a.filename for a in message.attachments],
            "status_callback": message.status_callback,
            "reference": message.reference,
            "at": datetime.now(timezone.utc).isoformat(),
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with open(self.directory / LOG_NAME, "ab") as f:
            # O_APPEND alone can split a large line between processes; the lock cannot.
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.write(line)
                f.flush()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        log.info("%s %s written to the local outbox as %s", self.name, message.reference, message_id)
        return Receipt(provider_id=message_id, status="sent")

    def _write_eml(self, message_id: str, message: OutgoingMessage) -> None:
        path = self.directory / f"{message_id}.eml"
        partial = path.with_suffix(".eml.partial")
        partial.write_bytes(bytes(build_email(message, self._mail_from)))
        os.replace(partial, path)  # a reader never sees half a file


def read_outbox(directory: Path | str) -> list[dict]:
    """Every message in the outbox, oldest first; [] when nothing was sent yet."""
    path = Path(directory) / LOG_NAME
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
