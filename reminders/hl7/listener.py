"""`reminders hl7 listen`: an asyncio MLLP server (python-hl7's streams) for SIU messages.

Each message on a connection is read, applied and answered in turn (an ACK per message, MSA-2 its
MSH-10) before the next is read, so a sender's order is kept. The database is synchronous
SQLAlchemy: messages are applied in one worker thread, one at a time across all connections, so
two senders never race to create the same patient. Log lines carry the message type, control ID
and the ACK code, never a patient's details (reminders.logs).
"""
from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from hl7.mllp import start_hl7_server
from sqlalchemy.exc import SQLAlchemyError

from reminders.db import session_scope
from reminders.hl7.ack import build_ack
from reminders.hl7.apply import apply_action
from reminders.hl7.mapping import (
    INTERNAL, MappingRules, Refusal, check_header, decode, parse_message, read_header, to_action,
)
from reminders.logs import also_sensitive, redact_exception_text, sensitive
from reminders.models import utcnow

log = logging.getLogger("reminders.hl7")

START_BLOCK, END_BLOCK = b"\x0b", b"\x1c\r"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # an SIU is a few kilobytes; a larger block closes the connection


@dataclass(frozen=True)
class Answer:
    ack: bytes
    code: str  # AA | AE | AR


def rules_from(settings) -> MappingRules:
    return MappingRules(appointment_types=dict(settings.hl7_appointment_types),
                        clinic_timezone=settings.clinic_timezone)


def answer(block: bytes, settings, now: Callable = utcnow) -> Answer:
    """One message (the bytes inside its MLLP frame) read, applied and answered."""
    text, encoding = decode(block)
    header = read_header(text)
    code, reason, error, where = "AA", "", "", None
    with sensitive():
        try:
            message = parse_message(text)
            action = to_action(message, check_header(header), rules_from(settings))
            p = action.patient
            also_sensitive(p.first_name, p.last_name, p.phone, p.email)  # masked in any log line below
            with session_scope() as session:
                reason = apply_action(session, action, settings, now()).text
        except Refusal as refusal:
            code, reason, error, where = refusal.ack, refusal.reason, refusal.code, refusal.where
        except SQLAlchemyError as exc:
            log.exception("HL7 %s %s: the database failed", header.name, header.control_id)
            code, error = "AE", INTERNAL
            reason = f"the reminders database could not store it ({type(exc).__name__}); nothing was stored; send it again"
        except Exception as exc:  # noqa: BLE001 - the sender gets an answer whatever went wrong
            log.exception("HL7 %s %s: failed", header.name, header.control_id)
            code, error = "AE", INTERNAL
            reason = f"internal error ({type(exc).__name__}); nothing was stored; send it again"
        where_text = f" at {where[0]}-{where[2]}" if where and where[2] else ""
        log.info("HL7 %s %s: %s%s%s", header.name, header.control_id or "(no MSH-10)", code,
                 f" {error}{where_text}: {redact_exception_text(reason)}" if code != "AA" else "",
                 f" ({reason})" if code == "AA" else "")
    ack = build_ack(header, code, reason, error, where)
    return Answer(ack.encode(encoding, errors="replace"), code)


class Listener:
    """The MLLP server: one task per connection, one thread that applies messages."""

    def __init__(self, settings, handle: Callable[[bytes], Answer] | None = None):
        self.settings = settings
        self.handle = handle or (lambda block: answer(block, settings))
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hl7-apply")

    async def connection(self, reader, writer) -> None:
        peer = writer.get_extra_info("peername")
        log.info("HL7 connection from %s", peer[0] if peer else "?")
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    block = await reader.readuntil(END_BLOCK)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip(b"\x0b\x1c\r\n\t "):
                        log.warning("HL7 connection closed in the middle of a message (%d bytes, no end of block)",
                                    len(exc.partial))
                    return
                except asyncio.LimitOverrunError:
                    log.warning("HL7 message over %d bytes: answered AR, connection closed", MAX_MESSAGE_BYTES)
                    ack = build_ack(None, "AR", f"message larger than {MAX_MESSAGE_BYTES} bytes", "100")
                    writer.writeblock(ack.encode("utf-8"))
                    await writer.drain()
                    return
                body = block[:-len(END_BLOCK)]
                start = body.find(START_BLOCK)
                body = body[start + 1:] if start >= 0 else body  # bytes before <VT> are line noise
                result = await loop.run_in_executor(self.executor, self.handle, body)
                writer.writeblock(result.ack)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def serve(self, host: str, port: int, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        server = await start_hl7_server(self.connection, host, port, limit=MAX_MESSAGE_BYTES)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        bound = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets)
        log.info("HL7 v2 listener (MLLP) on %s: SIU^S12, S13, S14, S15, S26", bound)
        try:
            await stop.wait()
        finally:
            server.close()
            await server.wait_closed()
            self.executor.shutdown(wait=True)
            log.info("HL7 listener stopped")


def run_listener(settings, host: str, port: int) -> None:
    asyncio.run(Listener(settings).serve(host, port))
