"""The clinic's sending numbers: each location's texts go from its own number, at its own pace, and
rows of different numbers go side by side (reminders.locations, reminders.pacing)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reminders.channel_specs import SMS
from reminders.channels import Channel, channels_for
from reminders.config import Settings
from reminders.locations import LocationBook
from reminders.models import Appointment, Location, OutboxMessage

# Rows of different sending numbers go side by side, each at its own pace, at most this many at
# once: each keeps a database connection busy now and then (the pool holds 15).
SENDER_THREADS = 12


@dataclass(frozen=True)
class Book:
    """A batch's locations (reminders.locations), and the pace each location set for its number."""

    book: LocationBook
    own_rates: dict[int, float | None]

    @property
    def several(self) -> bool:
        return self.book.several

    def settings_for(self, location_id: int | None) -> Settings:
        return self.book.settings_for(location_id)


def read_book(session: Session, settings: Settings) -> Book:
    locations = session.scalars(select(Location).order_by(Location.name)).all()
    return Book(LocationBook(settings, locations), {location.id: location.sms_per_second for location in locations})


@dataclass
class LocationChannels:
    """The channels of each location's sending number, built once (a Twilio client is not free)."""

    settings: Settings
    channels: dict[str, Channel]
    _built: dict[tuple, dict[str, Channel]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def at(self, book: Book, location_id: int | None) -> dict[str, Channel]:
        """The channels a location's messages go by: its texts from its own number, its emails as
        every location's."""
        place = book.settings_for(location_id)
        if place.twilio_from == self.settings.twilio_from or SMS.name not in self.channels:
            return self.channels
        # SMS_PER_SECOND is TWILIO_FROM's pace: a location's own number goes at its own rate, else
        # at the rate of its kind (reminders.pacing.rate_for).
        rate = book.own_rates.get(location_id) or 0.0
        key = (place.twilio_from, rate)
        with self._lock:
            channels = self._built.get(key)
            if channels is None:
                built = channels_for(place.model_copy(update={"sms_per_second": rate}))
                channels = self._built[key] = {**self.channels, SMS.name: built[SMS.name]}
        return channels


def grouped_by_sender(sessions: sessionmaker[Session], settings: Settings,
                      outbox_ids: list[int]) -> tuple[Book, list[list[int]]]:
    """The batch's locations, and its rows grouped by sending number (one group while the
    clinic has no locations), each group in the order given."""
    with sessions() as session:
        book = read_book(session, settings)
        if not book.several or len(outbox_ids) < 2:
            return book, [list(outbox_ids)]
        senders = _senders(session, book, outbox_ids)
    groups: dict[str, list[int]] = {}
    for outbox_id in outbox_ids:
        groups.setdefault(senders.get(outbox_id, ""), []).append(outbox_id)
    return book, list(groups.values())


def _senders(session: Session, book: Book, outbox_ids: list[int]) -> dict[int, str]:
    """What paces each row: its location's number for a text, else its channel's one sender."""
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.location_id,
               Appointment.id.label("visit_id"), Appointment.location_id.label("visit_location"))
        .outerjoin(Appointment, Appointment.id == OutboxMessage.appointment_id)
        .where(OutboxMessage.id.in_(outbox_ids)))
    return {row.id: book.settings_for(row.visit_location if row.visit_id is not None else row.location_id)
            .twilio_from if row.channel == SMS.name else row.channel for row in rows}


def side_by_side(sessions: sessionmaker[Session], groups: list[list[int]],
                 send: Callable[[list[int]], dict[int, str]]) -> dict[int, str]:
    """`send` each group, in threads of their own when there are several (each its own
    session); an error in one is raised once every group is done. On SQLite, one writer at a
    time, the groups go one after the other."""
    outcomes: dict[int, str] = {}
    bind = sessions.kw.get("bind")
    if len(groups) == 1 or (bind is not None and bind.dialect.name == "sqlite"):
        for group in groups:
            outcomes.update(send(group))
        return outcomes
    with ThreadPoolExecutor(max_workers=min(len(groups), SENDER_THREADS),
                            thread_name_prefix="reminders-sender") as pool:
        done = [pool.submit(send, group) for group in groups]
    for future in done:
        outcomes.update(future.result())
    return outcomes
