"""The ACK answering each message (original mode): MSH, MSA (MSA-2 is the message's MSH-10, MSA-3
the reason) and, for AE/AR, ERR with the location, the HL7 error code and the reason again."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from reminders.hl7.mapping import ERROR_TEXT, Header

OUR_APPLICATION = "CLINIC-REMINDERS"
DEFAULT_VERSION = "2.5.1"


def escape(text: str) -> str:
    """Free text inside a field: HL7's escape sequences for the delimiters, no line breaks."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
    out = out.replace("~", "\\R\\")
    return " ".join(out.split())


def build_ack(header: Header | None, code: str, text: str = "", error: str = "",
              where: tuple[str, int, int] | None = None, now: datetime | None = None) -> str:
    """The ACK as text, segments ended by carriage returns. `header` may be empty (a message whose
    MSH could not be read): MSA-2 is then empty too."""
    header = header or Header()
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    msh = "|".join([
        "MSH", "^~\\&", header.receiving_application or OUR_APPLICATION, header.receiving_facility,
        header.sending_application, header.sending_facility, now.strftime("%Y%m%d%H%M%S+0000"), "",
        f"ACK^{header.trigger}^ACK" if header.trigger else "ACK", uuid.uuid4().hex[:20],
        header.processing_id or "P", header.version or DEFAULT_VERSION,
    ])
    segments = [msh, "|".join(["MSA", code, header.control_id, escape(text)])]
    if code != "AA":
        error = error or "207"
        label = ERROR_TEXT.get(error, "")
        segment, sequence, field = where or ("", 0, 0)
        location = f"{segment}^{sequence or ''}^{field or ''}" if segment else ""
        eld = f"{location}^{error}&{escape(label)}&HL70357" if segment else f"^^^{error}&{escape(label)}&HL70357"
        # ERR-1 (v2.3/2.4 ELD), ERR-2 location, ERR-3 HL7 error code, ERR-4 severity, ERR-8 user message.
        segments.append("|".join(["ERR", eld, location, f"{error}^{escape(label)}^HL70357", "E", "", "", "",
                                  escape(text)]))
    return "\r".join(segments) + "\r"
