"""A 45-day course for six patients, SMS-only, email-only and both, in English and Spanish, with
injected time only: what each patient received, on which channel and when, and what they answered.

The course (day 0 is Monday 4 January 2027, visits at 10:00 local):
- booked a week ahead: an induction series of six, with a medications-to-hold note too long for a
  first text; the first infusion is moved a day (re-imported with the new time) after its 72-hour
  reminder went;
- infusion 3 is missed: staff mark it no-show after it ends and book a make-up visit at the end
  of the series; every visit held is marked completed after it ends (as the staff UI does);
- after the series nothing is booked for a week and a half (caring contacts' time), then a
  maintenance visit is booked on day 28 for day 35; the simulation runs to the end of day 45.

Time jumps from event to event (the next due outbox row, the next scripted step: a booking, a
move, a visit marked after it ends, a patient's answer; with `heartbeat=True` also each zone's
08:00 and check-in hour, which finds nothing more), calling reminders.pipeline.run_pass(settings,
now) with a recording provider in place of Twilio and SMTP. The patients answer as real ones would:
a mood number to a check-in by text (through reminders.inbound.replies.handle_inbound, what the
signed webhook calls), C to the first preparation text, and the questionnaire and email check-in
pages by following the link (the Flask app's test client, its clock the simulation's).
"""
from __future__ import annotations

import html.parser
import itertools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from reminders.channels.base import InboundText, OutgoingMessage, Receipt
from reminders.db import session_factory
from reminders.inbound.replies import handle_inbound
from reminders.intake.records import AppointmentRecord, PatientRecord
from reminders.intake.upsert import upsert_appointment, upsert_patient
from reminders.models import InboundMessage, OutboxMessage, Patient
from reminders.pipeline import run_pass

DAY0 = date(2027, 1, 4)  # a Monday
DAYS = 45
BOOKED_ON = DAY0 - timedelta(days=7)
CLINIC_NUMBER = "+15005550006"
PUBLIC_BASE_URL = "https://clinic.example.org"
MOOD = "7"  # what every patient answers to "how are you, 0 to 10"
MEDICATIONS = {
    "en": "No clonazepam the night before, and skip the morning lamotrigine dose",
    "es": "Sin clonazepam la noche anterior y sin la dosis de lamotrigina de la mañana",
}


@dataclass(frozen=True)
class Person:
    key: str  # "en-sms", "es-email", ...
    first_name: str
    last_name: str
    language: str
    channel: str  # sms | email | both
    zone: str
    phone: str | None
    email: str | None

    @property
    def has(self) -> set[str]:
        return {c for c, address in (("sms", self.phone), ("email", self.email)) if address}


PEOPLE = (
    Person("en-sms", "Maya", "Thompson", "en", "sms", "America/New_York", "+12025550101", None),
    Person("en-email", "Daniel", "Okafor", "en", "email", "America/New_York", None, "daniel@example.org"),
    Person("en-both", "Grace", "Whitfield-Harrington", "en", "both", "America/Chicago", "+12025550103",
           "grace@example.org"),
    Person("es-sms", "Lucía", "Ramírez", "es", "sms", "America/Los_Angeles", "+12025550104", None),
    Person("es-email", "Ramón", "Núñez", "es", "email", "America/Chicago", None, "ramon@example.org"),
    Person("es-both", "Sofía", "Hernández", "es", "both", "America/New_York", "+12025550106", "sofia@example.org"),
)


# ---------------------------------------------------------------- the course, in visits

@dataclass(frozen=True)
class PlannedVisit:
    ref: str  # "i1".."i7", "m1"
    kind: str
    day: int  # days after DAY0
    booked_day: int = -7


# i3 is missed; i7 is its make-up, booked the day i3 is marked missed.
VISITS = (
    PlannedVisit("i1", "induction", 0), PlannedVisit("i2", "induction", 3), PlannedVisit("i3", "induction", 7),
    PlannedVisit("i4", "induction", 9), PlannedVisit("i5", "induction", 11), PlannedVisit("i6", "induction", 15),
    PlannedVisit("i7", "induction", 17, booked_day=7), PlannedVisit("m1", "maintenance", 35, booked_day=28),
)
MISSED, MOVED, MAKE_UP = "i3", "i1", "i7"
MOVED_TO_DAY = 1  # i1 goes from Monday to Tuesday
MOVED_ON_DAY = -2  # two days before its old time: after its 72-hour reminder went
VISIT_HOUR = 10
DURATION = timedelta(minutes=60)
MARKED_AFTER_END = timedelta(minutes=20)  # staff mark the visit after the patient leaves
MAINTENANCE_BOOKED_HOUR = 12


def _visit(ref: str) -> PlannedVisit:
    return next(v for v in VISITS if v.ref == ref)


def local(person: Person, day: int, hour: int, minute: int = 0) -> datetime:
    moment = datetime.combine(DAY0 + timedelta(days=day), time(hour, minute), ZoneInfo(person.zone))
    return moment.astimezone(timezone.utc)


def visit_start(person: Person, visit: PlannedVisit, moved: bool = True) -> datetime:
    day = MOVED_TO_DAY if moved and visit.ref == MOVED else visit.day
    return local(person, day, VISIT_HOUR)


# ---------------------------------------------------------------- what the patients' phones and inboxes saw

@dataclass
class Delivery:
    """One message a provider accepted (or one answer the webhook gave to a patient's text)."""

    at: datetime
    channel: str  # sms | email
    to: str
    body: str
    subject: str | None = None
    html: str | None = None
    outbox_id: int | None = None
    rule: str = ""  # the outbox row's rule; "answer" for the webhook's answer to a text
    kind: str = ""
    appointment_id: int | None = None
    visit_ref: str | None = None  # "i1".. as the course names the visit
    part: int = 1  # 2, 3 ... for a text that follows the one before it (what did not fit)


@dataclass
class Reply:
    """What the patient sent (a text, or an answer on a page) and what they got back."""

    at: datetime
    channel: str  # sms | web
    text: str
    answer: str | None
    to_outbox_id: int | None = None


@dataclass
class Course:
    """The result: per patient, every delivery and reply in order."""

    deliveries: dict[str, list[Delivery]] = field(default_factory=dict)
    replies: dict[str, list[Reply]] = field(default_factory=dict)
    passes: int = 0
    # The staff inbox items about each patient's missed visit ("call the patient"), as
    # (classification, needs_staff, body) at the end of the course.
    staff_tasks: dict[str, list[tuple[str, bool, str]]] = field(default_factory=dict)

    def timeline(self, key: str) -> list[Delivery | Reply]:
        """Deliveries and replies merged in time order (a reply before the answer it got)."""
        items: list = [*self.deliveries.get(key, []), *self.replies.get(key, [])]
        return sorted(items, key=lambda item: (item.at, 0 if isinstance(item, Reply) else 1))


class Recorder:
    """The fake provider: accepts every message and remembers it with the simulated time."""

    def __init__(self, clock: Callable[[], datetime]):
        self.clock = clock
        self.messages: list[tuple[datetime, str, OutgoingMessage]] = []
        self._ids = itertools.count(1)

    def channel(self, name: str):
        recorder = self

        class _Channel:
            def send(self, message: OutgoingMessage) -> Receipt:
                recorder.messages.append((recorder.clock(), name, message))
                return Receipt(provider_id=f"SIM{next(recorder._ids):08d}", status="sent")

        _Channel.name = name
        return _Channel()

    def channels(self) -> dict:
        return {"sms": self.channel("sms"), "email": self.channel("email")}


# ---------------------------------------------------------------- following a link as the patient

class _Page(html.parser.HTMLParser):
    """What a patient can do on a page: the first POST form (its action, hidden fields, the options
    offered by radio inputs or by named buttons, number fields), or a "start" link to follow."""

    def __init__(self):
        super().__init__()
        self.action: str | None = None
        self.in_form = False
        self.done = False
        self.hidden: dict[str, str] = {}
        self.options: dict[str, list[str]] = {}
        self.numbers: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and not self.done and (a.get("method") or "get").lower() == "post":
            self.in_form, self.action = True, a.get("action") or ""
        elif tag == "a" and "start" in (a.get("class") or "").split() and not (a.get("href") or "").startswith(
                ("tel:", "sms:", "mailto:")):
            self.links.append(a["href"])
        elif not self.in_form or not a.get("name"):
            return
        elif tag == "input":
            kind, name = (a.get("type") or "text").lower(), a["name"]
            if kind == "hidden":
                self.hidden[name] = a.get("value") or ""
            elif kind in ("radio", "submit"):
                self.options.setdefault(name, []).append(a.get("value") or "")
            elif kind in ("number", "range", "text", "tel") and name not in self.numbers:
                self.numbers.append(name)
        elif tag == "button":
            self.options.setdefault(a["name"], []).append(a.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "form" and self.in_form:
            self.in_form, self.done = False, True


def _choose(path: str, options: list[str]) -> str:
    """A mood scale (0..10) gets MOOD; a questionnaire item its mildest answer but one, except the
    ninth, the self-harm item, where the patient reports no such thoughts."""
    numeric = [o for o in options if o.lstrip("-").isdigit()]
    if numeric and max(int(o) for o in numeric) >= 10 and MOOD in numeric:
        return MOOD
    if path.rstrip("/").endswith("/9") and "0" in options:
        return "0"
    return options[1] if len(options) > 2 else options[0]


class _Words(html.parser.HTMLParser):
    """A page's words as the patient reads them (headings and paragraphs, no scripts or styles)."""

    def __init__(self):
        super().__init__()
        self.words: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style", "head", "title")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style", "head", "title") and self._skip > 0

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.words.append(" ".join(data.split()))


def page_words(html_text: str, limit: int = 400) -> str:
    reader = _Words()
    reader.feed(html_text)
    text = " ".join(reader.words)
    return text if len(text) <= limit else text[:limit] + "..."


def follow_link(client, url: str, max_pages: int = 60) -> tuple[list[str], str]:
    """Open the link and answer every page until nothing is left to answer. Returns the answers
    and the words of the last page (the thanks the patient read)."""
    path = urlsplit(url).path
    response = client.get(path, follow_redirects=True)
    chosen: list[str] = []
    opened: set[str] = {path}
    for _page in range(max_pages):
        if response.status_code != 200:
            chosen.append(f"(page answered {response.status_code})")
            break
        page = _Page()
        page.feed(response.get_data(as_text=True))
        if page.action is None:
            ahead = [link for link in page.links if urlsplit(urljoin(path, link)).path not in opened]
            if not ahead:
                break
            path = urlsplit(urljoin(path, ahead[0])).path
            opened.add(path)
            response = client.get(path, follow_redirects=True)
            continue
        data = dict(page.hidden)
        for name, options in page.options.items():
            data[name] = _choose(path, options)
            chosen.append(data[name])
        for name in page.numbers:
            data.setdefault(name, MOOD if name in ("mood", "score", "answer") else "")
            chosen.append(data[name])
        target = urlsplit(urljoin(path, page.action or path)).path
        response = client.post(target, data=data, follow_redirects=True)
        path = urlsplit(response.request.url).path if response.request is not None else target
        opened.add(path)
    return chosen, page_words(response.get_data(as_text=True))


LINK = re.compile(re.escape(PUBLIC_BASE_URL) + r"/[^\s\"'<>)]+")


# ---------------------------------------------------------------- the simulation

def _is_checkin(rule: str) -> bool:
    return rule.startswith(("checkin", "caring_contact"))


class Simulation:
    def __init__(self, settings, people=PEOPLE, start: datetime | None = None, days: int = DAYS,
                 heartbeat: bool = False):
        self.settings = settings
        self.heartbeat = heartbeat
        self.people = {p.key: p for p in people}
        self.sessions = session_factory(settings.effective_database_url)
        self.now = start or min(local(p, -7, 9) for p in people)
        self.end = max(local(p, days, 23, 59) for p in people)
        self.recorder = Recorder(lambda: self.now)
        self.channels = self.recorder.channels()
        self.course = Course({k: [] for k in self.people}, {k: [] for k in self.people})
        # (when, order, action, by the patient): a patient's answer needs no pass of its own
        self._events: list[tuple[datetime, int, Callable[[], None], bool]] = []
        self._order = itertools.count()
        self._seen = 0
        self._sids = itertools.count(1)
        self.app = None
        self.client = None
        self.patient_ids: dict[str, int] = {}
        self.visit_ids: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------ set-up

    def web(self):
        if self.client is None:
            from reminders.web import create_app

            self.app = create_app(self.settings, {"TESTING": True, "CLOCK": lambda: self.now,
                                                  "RATE_LIMIT_CLOCK": lambda: self.now.timestamp()})
            self.client = self.app.test_client()
        return self.client

    def at(self, when: datetime, action: Callable[[], None], by_patient: bool = False) -> None:
        self._events.append((when, next(self._order), action, by_patient))

    def script(self) -> None:
        for person in self.people.values():
            missed_marked = visit_start(person, _visit(MISSED)) + DURATION + MARKED_AFTER_END
            for visit in VISITS:
                when = local(person, visit.booked_day, MAINTENANCE_BOOKED_HOUR if visit.kind == "maintenance" else 9)
                if visit.ref == MAKE_UP:
                    when = missed_marked + timedelta(minutes=10)  # staff book it once they mark the miss
                self.at(when, lambda p=person, v=visit: self.book(p, v, moved=False))
            self.at(local(person, MOVED_ON_DAY, 11), lambda p=person: self.move(p, VISITS[0]))
            for visit in VISITS:
                ends = visit_start(person, visit) + DURATION + MARKED_AFTER_END
                status = "no_show" if visit.ref == MISSED else "completed"
                self.at(ends, lambda p=person, v=visit, s=status: self.mark(p, v, s))

    def _patient(self, session, person: Person) -> Patient:
        return upsert_patient(session, PatientRecord(
            external_id=person.key, first_name=person.first_name, last_name=person.last_name, phone=person.phone,
            email=person.email, timezone=person.zone, preferred_channel=person.channel, language=person.language,
            medications_to_hold=MEDICATIONS[person.language],
        ), self.now).patient

    def _upsert(self, person: Person, visit: PlannedVisit, starts_at: datetime, status: str | None) -> None:
        """As the CSV import, the API and the staff UI do it (reminders.intake.upsert)."""
        with self.sessions() as session:
            patient = self._patient(session, person)
            outcome = upsert_appointment(session, patient, AppointmentRecord(
                external_id=f"{person.key}-{visit.ref}", kind=visit.kind, starts_at=starts_at,
                duration_minutes=int(DURATION.total_seconds() // 60), location="Suite 200", status=status,
            ), self.now, self.settings.induction_series_length)
            session.commit()
            self.patient_ids[person.key] = patient.id
            self.visit_ids[(person.key, visit.ref)] = outcome.appointment.id

    def book(self, person: Person, visit: PlannedVisit, moved: bool = False) -> None:
        self._upsert(person, visit, visit_start(person, visit, moved), None)

    def move(self, person: Person, visit: PlannedVisit) -> None:
        """Re-imported with the new time (same external id), as a CSV or the API would."""
        self._upsert(person, visit, visit_start(person, visit, moved=True), None)

    def mark(self, person: Person, visit: PlannedVisit, status: str) -> None:
        """What the staff UI's Completed / No-show buttons do (reminders.web.staff.visit_marks.change_status:
        the visit re-upserted with the status)."""
        self._upsert(person, visit, visit_start(person, visit), status)

    # ------------------------------------------------------------ the patient's side

    def _person_by_address(self, address: str) -> Person | None:
        return next((p for p in self.people.values() if address in (p.phone, p.email)), None)

    def text_back(self, person: Person, body: str, to_outbox_id: int | None) -> None:
        with self.sessions() as session:
            handled = handle_inbound(session, self.settings, InboundText(
                message_sid=f"SMSIM{next(self._sids):029d}", from_number=person.phone, to_number=CLINIC_NUMBER,
                body=body), self.now)
            session.commit()
        self.course.replies[person.key].append(Reply(self.now, "sms", body, handled.reply, to_outbox_id))
        if handled.reply:
            self.course.deliveries[person.key].append(Delivery(self.now, "sms", person.phone, handled.reply,
                                                               rule="answer", kind="answer"))

    def open_link(self, person: Person, url: str, to_outbox_id: int | None) -> None:
        try:
            chosen, last_page = follow_link(self.web(), url)
        except Exception as exc:  # noqa: BLE001 - a page that breaks is a finding, not a crash
            chosen, last_page = [], f"(the page failed: {exc!r})"
        self.course.replies[person.key].append(
            Reply(self.now, "web", f"opened {urlsplit(url).path} and answered {', '.join(chosen) or 'nothing'}",
                  last_page, to_outbox_id))

    def respond(self, delivery: Delivery, person: Person) -> None:
        """What the patient does with a message: answer a check-in, confirm, fill in a questionnaire."""
        later = self.now + timedelta(minutes=25)
        if delivery.part > 1:
            return  # the rest of a message the patient reacts to once
        if delivery.channel == "sms" and _is_checkin(delivery.rule):
            self.at(later, lambda: self.text_back(person, MOOD, delivery.outbox_id), by_patient=True)
        elif delivery.channel == "sms" and delivery.rule == "first_induction_72h" and delivery.visit_ref == MOVED:
            self.at(later, lambda: self.text_back(person, "C", delivery.outbox_id), by_patient=True)
        links = LINK.findall(delivery.body or "")
        # A questionnaire or a check-in by link: answered once, from the first channel it came by.
        if links and (delivery.rule in ("measures",) or (_is_checkin(delivery.rule) and delivery.channel == "email")):
            if not any(r.to_outbox_id == delivery.outbox_id for r in self.course.replies[person.key]):
                self.at(later + timedelta(minutes=5), lambda: self.open_link(person, links[0], delivery.outbox_id),
                        by_patient=True)

    # ------------------------------------------------------------ the clock

    def _collect(self) -> None:
        """Turn what the provider got since the last look into deliveries, and let the patients react."""
        new = self.recorder.messages[self._seen:]
        self._seen = len(self.recorder.messages)
        if not new:
            return
        refs = {(v, p): ref for (p, ref), v in self.visit_ids.items()}
        with self.sessions() as session:
            for when, channel, message in new:
                row = session.get(OutboxMessage, int(message.reference)) if message.reference.isdigit() else None
                person = self._person_by_address(message.to)
                if person is None:
                    continue  # a staff alert
                delivery = Delivery(
                    when, channel, message.to, message.body, message.subject, message.html,
                    outbox_id=row.id if row else None, rule=row.rule if row else "", kind=row.kind if row else "",
                    appointment_id=row.appointment_id if row else None,
                    visit_ref=refs.get((row.appointment_id, person.key)) if row else None,
                    part=getattr(row, "part", 1) or 1)
                self.course.deliveries[person.key].append(delivery)
                self.respond(delivery, person)

    def _next_due(self) -> datetime | None:
        with self.sessions() as session:
            return session.scalar(select(func.min(OutboxMessage.due_at)).where(OutboxMessage.status == "planned"))

    def _next_hours(self) -> datetime:
        """The next 08:00 or check-in hour in any patient's zone: nothing planned is missed between."""
        hours = (self.settings.quiet_hours_end, time(self.settings.checkin_hour))
        candidates = []
        for person in self.people.values():
            zone = ZoneInfo(person.zone)
            today = self.now.astimezone(zone).date()
            for offset in (0, 1):
                for hour in hours:
                    moment = datetime.combine(today + timedelta(days=offset), hour, zone).astimezone(timezone.utc)
                    if moment > self.now:
                        candidates.append(moment)
        return min(candidates)

    def run(self) -> Course:
        self.script()
        while self.now <= self.end:
            clinic_acted = False
            for event in sorted((e for e in self._events if e[0] <= self.now), key=lambda e: e[:2]):
                self._events.remove(event)
                event[2]()
                clinic_acted |= not event[3]
            due = self._next_due()
            # A pass plans what the clinic changed and sends what is due; a patient's answer alone
            # (answered in its own request, as the webhook does) leaves the next pass to its time.
            if clinic_acted or (due is not None and due <= self.now):
                run_pass(self.settings, self.now, sessions=self.sessions, channels=self.channels)
                self.course.passes += 1
                self._collect()
            candidates = [e[0] for e in self._events] + ([self._next_hours()] if self.heartbeat else [])
            due = self._next_due()
            if due is not None:
                candidates.append(max(due, self.now + timedelta(seconds=1)))
            if not candidates:
                break
            self.now = max(min(candidates), self.now + timedelta(seconds=1))
        self._collect_staff_tasks()
        return self.course

    def _collect_staff_tasks(self) -> None:
        """The inbox items a missed visit left for staff (reminders.missed_visits: one per visit,
        message_sid "task:missed_visit:<visit id>")."""
        with self.sessions() as session:
            for key in self.people:
                visit_id = self.visit_ids.get((key, MISSED))
                rows = session.scalars(select(InboundMessage).where(
                    InboundMessage.message_sid == f"task:missed_visit:{visit_id}")).all()
                self.course.staff_tasks[key] = [(r.classification, bool(r.needs_staff), r.body or "") for r in rows]


def simulate(settings) -> Course:
    """The whole course; `settings` as the tests' fixture gives them, with MEASURES_ENABLED on and
    PUBLIC_BASE_URL set (the links the patients follow)."""
    return Simulation(settings).run()


def course_settings(configure: Callable[..., object]):
    """The clinic's settings for the course: questionnaires on (the default a clinic gets), links
    to the public pages. `configure(NAME=value)` is tests.conftest's fixture or the script's own."""
    return configure(MEASURES_ENABLED="true", PUBLIC_BASE_URL=PUBLIC_BASE_URL, SMS_PER_SECOND="10000")
