"""One FHIR sync: the appointments changed since the last one, then a re-read of the coming window.

1. `Appointment?_lastUpdated=ge<high-water>&_include=Appointment:patient`, every page (the first
   sync of a server reads the visits from FHIR_FIRST_SYNC_DAYS ago on instead). Each appointment is
   mapped (reminders.fhir.mapping) and upserted through the CSV import's path (intake.upsert_batch),
   a page per transaction. A cancelled (or entered-in-error) visit taken in before is cancelled.
2. The window re-read: `Appointment?date=ge<now>&date=le<now + FHIR_RECONCILE_DAYS>`. A visit here
   that came from this server (its external_id has FHIR_ID_PREFIX), is still on and falls in the
   window, but that the server no longer has (deleted: R4 says nothing on delete), is cancelled.
3. The high-water mark (the newest meta.lastUpdated seen) is stored per FHIR_BASE_URL only when
   every page was read: a sync that fails part-way reads the same changes again next time.
4. The visits changed are planned (their reminders moved or canceled) unless the caller leaves it
   to the next pass.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from reminders.db import session_factory
from reminders.fhir import mapping
from reminders.fhir.client import FhirClient, FhirError
from reminders.intake.records import AppointmentRecord, VisitWindow, visit_window
from reminders.intake.batch import upsert_batch
from reminders.intake.upsert import IntakeError, apply_changes, renumber_course, upsert_patient
from reminders.locations import LocationBook
from reminders.models import Appointment, FhirSyncState, Patient, utcnow
from reminders.models.appointments import ACTIVE_STATUSES, AppointmentStatus

log = logging.getLogger(__name__)

RESULTS = ("created", "updated", "unchanged", "canceled", "skipped", "rejected")
# The window re-read cancels visits absent from the server only while they are at most this many,
# or at most half of the window's visits here (see _reconcile).
WINDOW_SANITY_COUNT = 20


@dataclass(frozen=True)
class Item:
    resource: str  # "Appointment/123": what the clinic looks up on its own server
    result: str
    reasons: tuple[str, ...] = ()


@dataclass
class SyncReport:
    base_url: str
    items: list[Item] = field(default_factory=list)
    pages: int = 0
    window_read: int = 0  # appointments the window re-read found on the server
    window_canceled: int = 0
    window_checked: bool = False
    window_refused: str = ""  # why the re-read canceled nothing for being absent
    planned: int = 0
    read: int = 0  # appointments the changes' search returned (the window re-read apart)
    patients: Counter = field(default_factory=Counter)  # patients here changed on the server: updated, unchanged, rejected
    patient_problems: list[Item] = field(default_factory=list)
    high_water: datetime | None = None

    def count(self, result: str) -> int:
        return sum(1 for item in self.items if item.result == result)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("rejected") or self.patients["rejected"] else 0

    def summary(self) -> dict:
        return {
            "base_url": self.base_url, "appointments": self.read,
            "pages": self.pages, **{name: self.count(name) for name in RESULTS},
            "window_read": self.window_read, "window_canceled": self.window_canceled,
            "window_refused": self.window_refused or None, "planned": self.planned,
            "high_water": self.high_water.isoformat() if self.high_water else None,
            "patients": {name: self.patients[name] for name in ("updated", "unchanged", "rejected")},
            "problems": [{"resource": i.resource, "result": i.result, "reasons": list(i.reasons)}
                         for i in [*self.items, *self.patient_problems] if i.result in ("skipped", "rejected")],
            "canceled_visits": [{"resource": i.resource, "reasons": list(i.reasons)}
                                for i in self.items if i.result == "canceled"],
        }

    def item_lines(self) -> list[str]:
        """One line per visit skipped, rejected or canceled, with the reasons."""
        return [f"{i.resource}: {i.result}: {'; '.join(i.reasons)}" for i in [*self.items, *self.patient_problems]
                if i.result in ("skipped", "rejected", "canceled")]

    def total_lines(self) -> list[str]:
        out = []
        counts = ", ".join(f"{self.count(name)} {name}" for name in RESULTS)
        out.append(f"{self.read} appointments from {self.base_url} ({self.pages} pages): {counts}")
        if self.window_checked:
            out.append(f"window re-read: {self.window_read} appointments on the server, "
                       f"{self.window_canceled} visits here no longer there canceled")
            if self.window_refused:
                out.append(f"window re-read: warning: {self.window_refused}")
        if sum(self.patients.values()):
            out.append(f"patients changed on the server: {self.patients['updated']} updated, "
                       f"{self.patients['unchanged']} unchanged, {self.patients['rejected']} rejected")
        if self.planned:
            out.append(f"{self.planned} messages planned")
        return out


def sync(settings, *, sessions: sessionmaker[Session] | None = None, now: datetime | None = None,
         client: FhirClient | None = None, plan: bool = True) -> SyncReport:
    """Run one sync of settings.fhir_base_url; FhirError if the server cannot be read."""
    sessions = sessions or session_factory(settings.effective_database_url)
    client = client or FhirClient(settings)
    now = now or utcnow()
    ms = mapping.MappingSettings.from_settings(settings)
    base_url = settings.fhir_base_url.rstrip("/")
    report = SyncReport(base_url)
    with sessions() as session:
        state = _state(session, base_url)
        high_water = state.high_water
        session.commit()
        params = [("_include", "Appointment:patient"), ("_count", str(settings.fhir_page_size)),
                  ("_sort", "_lastUpdated")]
        if high_water is not None:
            params.insert(0, ("_lastUpdated", f"ge{_instant(high_water)}"))
        else:
            params.insert(0, ("date", f"ge{_instant(now - timedelta(days=settings.fhir_first_sync_days))}"))
        newest = high_water
        resolver = mapping.Resolver()
        locations = LocationBook.load(session, settings)
        with visit_window(VisitWindow.from_settings(settings, now)):
            for page in client.search("Appointment", params):
                report.pages += 1
                newest = _later(newest, _take_page(session, client, page, resolver, ms, settings, now, report,
                                                   locations))
            # Patients whose contact details or language changed with no change to their visits.
            patients_newest = state.patient_high_water
            if patients_newest is not None:
                patients_newest = _take_patients(session, client, ms, now, report, patients_newest)
            else:  # first sync: from the newest of the patients it read
                patients_newest = max((mapping.last_updated(p) for p in resolver.patients.values()
                                       if mapping.last_updated(p) is not None), default=newest)
        if settings.fhir_reconcile_days > 0 and ms.id_prefix:
            _reconcile(session, client, ms, settings, now, report)
            state.last_reconciled_at = now
        report.high_water = newest
        state = _state(session, base_url)
        state.high_water = newest
        state.patient_high_water = patients_newest
        state.last_sync_at = now
        state.last_summary = {k: v for k, v in report.summary().items() if k not in ("problems", "canceled_visits")}
        session.commit()
        if plan:
            from reminders.planning.planner import plan_pending
            from reminders.timing.rules import RuleSettings

            report.planned = plan_pending(session, RuleSettings.from_settings(settings), now)
            session.commit()
    log.info("fhir sync: %s", {k: v for k, v in report.summary().items() if k not in ("problems", "canceled_visits")})
    return report


def _state(session: Session, base_url: str) -> FhirSyncState:
    state = session.scalar(select(FhirSyncState).where(FhirSyncState.base_url == base_url))
    if state is None:
        state = FhirSyncState(base_url=base_url)
        session.add(state)
        session.flush()
    return state


def _take_page(session: Session, client: FhirClient, page, resolver: mapping.Resolver, ms: mapping.MappingSettings,
               settings, now: datetime, report: SyncReport, locations: LocationBook | None = None) -> datetime | None:
    """Map and upsert one page in one transaction; the newest meta.lastUpdated among its appointments."""
    for patient, full_url in page.included:
        resolver.add(patient, full_url)
    for resource, reason in page.unreadable:
        report.items.append(Item(resource, "rejected", (reason,)))
    newest = None
    appointments = [resource for resource, _ in page.matches]
    report.read += len(appointments) + len(page.unreadable)
    for appointment in appointments:
        newest = _later(newest, mapping.last_updated(appointment))
    known = _stored(session, [f"{ms.id_prefix}{a.id}" for a in appointments])
    # Patients the page named but did not include (a server that includes each patient once per search).
    for appointment in appointments:
        reference = mapping.patient_reference(appointment)
        if reference and resolver.find(reference) is None and appointment.status in mapping.STATUS_MAP \
                and appointment.status not in mapping.CANCELING:
            patient_id = reference.split("/_history/")[0].rstrip("/").split("/")[-1]
            patient = client.read("Patient", patient_id)
            if patient is not None:
                resolver.add(patient)

    to_write: list[tuple[str, mapping.Mapped]] = []
    _open_transaction(session)
    for appointment in appointments:
        name = f"Appointment/{appointment.id}"
        external_id = f"{ms.id_prefix}{appointment.id}"
        outcome = mapping.map_appointment(appointment, resolver, ms, known=external_id in known, locations=locations)
        if isinstance(outcome, mapping.Skipped):
            report.items.append(Item(name, "skipped", (outcome.reason,)))
        elif isinstance(outcome, mapping.Rejected):
            report.items.append(Item(name, "rejected", outcome.reasons))
        elif isinstance(outcome, mapping.Cancel):
            canceled = cancel_visit(session, external_id, now)
            report.items.append(Item(name, "canceled" if canceled else "unchanged",
                                     (outcome.reason,) if canceled else ()))
        else:
            to_write.append((name, outcome))
    results = _write(session, [(m.patient, m.appointment) for _, m in to_write], now, settings.induction_series_length)
    for (name, mapped), result in zip(to_write, results):
        if isinstance(result, Exception):
            report.items.append(Item(name, "rejected", (_reason(result),)))
        elif result == "updated" and mapped.appointment.status == AppointmentStatus.CANCELED:
            report.items.append(Item(name, "canceled", (f"{mapped.fhir_status} on the server",)))
        else:
            report.items.append(Item(name, result))
    session.commit()
    return newest


def _take_patients(session: Session, client: FhirClient, ms: mapping.MappingSettings, now: datetime,
                   report: SyncReport, since: datetime) -> datetime:
    """`Patient?_lastUpdated=ge<since>`: the patients here (and only those) take the server's
    contact details and language, as a CSV row would give them; the newest lastUpdated seen."""
    newest = since
    params = [("_lastUpdated", f"ge{_instant(since)}"), ("_count", str(client.settings.fhir_page_size))]
    for page in client.search("Patient", params):
        patients = [resource for resource, _ in page.matches + page.included if resource.get_resource_type() == "Patient"]
        for patient in patients:
            newest = _later(newest, mapping.last_updated(patient))
        stored = set(session.scalars(select(Patient.external_id).where(
            Patient.external_id.in_([f"{ms.id_prefix}{p.id}" for p in patients])))) if patients else set()
        for patient in patients:
            if f"{ms.id_prefix}{patient.id}" not in stored:
                continue
            record = mapping.map_patient(patient, ms)
            if isinstance(record, mapping.Rejected):
                report.patients["rejected"] += 1
                report.patient_problems.append(Item(f"Patient/{patient.id}", "rejected", record.reasons))
                continue
            try:
                with session.begin_nested():
                    result = upsert_patient(session, record, now).result
            except Exception as exc:  # noqa: BLE001 - reported, the others go on
                report.patients["rejected"] += 1
                report.patient_problems.append(Item(f"Patient/{patient.id}", "rejected", (_reason(exc),)))
                continue
            report.patients[result] += 1
        session.commit()
    return newest


def _stored(session: Session, external_ids: list[str]) -> set[str]:
    if not external_ids:
        return set()
    return set(session.scalars(select(Appointment.external_id).where(Appointment.external_id.in_(external_ids))))


def cancel_visit(session: Session, external_id: str, now: datetime) -> bool:
    """Cancel a stored visit (the same change a CSV row with status canceled makes); True if it was on."""
    visit = session.scalar(select(Appointment).where(Appointment.external_id == external_id)
                           .execution_options(populate_existing=True))
    if visit is None or visit.status == AppointmentStatus.CANCELED:
        return False
    record = AppointmentRecord.model_construct(
        external_id=external_id, kind=visit.kind, starts_at=visit.starts_at, duration_minutes=visit.duration_minutes,
        location=visit.location, status=AppointmentStatus.CANCELED, condition=None)
    if apply_changes(visit, record, now):
        session.flush()
        renumber_course(session, visit.course_id)
    return True


def _reconcile(session: Session, client: FhirClient, ms: mapping.MappingSettings, settings, now: datetime,
               report: SyncReport) -> None:
    """Cancel the visits from this server in the coming window that the server no longer has."""
    end = now + timedelta(days=settings.fhir_reconcile_days)
    params = [("date", f"ge{_instant(now)}"), ("date", f"le{_instant(end)}"), ("_count", str(settings.fhir_page_size))]
    on_server: dict[str, str] = {}
    totals: set[int] = set()
    for page in client.search("Appointment", params):
        if page.total is not None:
            totals.add(page.total)
        for resource, _ in page.matches:
            on_server[f"{ms.id_prefix}{resource.id}"] = resource.status
        for name, _reason in page.unreadable:  # there, though not readable: not deleted
            on_server[f"{ms.id_prefix}{name.partition('/')[2]}"] = "unreadable"
    report.window_checked = True
    report.window_read = len(on_server)
    here = session.execute(
        select(Appointment.external_id).where(
            Appointment.external_id.startswith(ms.id_prefix, autoescape=True),
            Appointment.starts_at >= now, Appointment.starts_at <= end,
            Appointment.status.in_(ACTIVE_STATUSES),
        )
    ).scalars().all()
    gone = {external_id: ("no longer on the server (deleted)" if on_server.get(external_id) is None
                          else mapping.CANCELING[on_server[external_id]])
            for external_id in here if on_server.get(external_id, "cancelled") in mapping.CANCELING}
    missing = sum(1 for external_id in gone if external_id not in on_server)
    # A server that answered only part of the window (a cap on results, a search it cut short) must
    # not cancel the rest: patients would go without their instructions. Refuse and say so.
    if totals and max(totals) > len(on_server):
        report.window_refused = (f"the server counted {max(totals)} appointments in the window but sent "
                                 f"{len(on_server)}; nothing was canceled for being absent")
        gone = {k: v for k, v in gone.items() if k in on_server}
    elif missing > WINDOW_SANITY_COUNT and missing > len(here) // 2:
        report.window_refused = (f"{missing} of the {len(here)} visits here in the window are not on the server; "
                                 "so many at once looks like a partial answer, so none was canceled for being "
                                 "absent (cancel them at the source with status cancelled, or check the server)")
        gone = {k: v for k, v in gone.items() if k in on_server}
    _open_transaction(session)
    for external_id, reason in gone.items():
        if cancel_visit(session, external_id, now):
            report.window_canceled += 1
            report.items.append(Item(f"Appointment/{external_id[len(ms.id_prefix):]}", "canceled", (reason,)))
    session.commit()


def _write(session: Session, items: list, now: datetime, series_length: int) -> list:
    """upsert_batch in a savepoint; a batch the database refuses is tried again in halves, down to
    the visit at fault (as the CSV import does)."""
    if not items:
        return []
    try:
        with session.begin_nested():
            return upsert_batch(session, items, now, series_length)
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise
        if len(items) == 1:
            return [exc]
    except Exception as exc:  # noqa: BLE001 - a value the database layer cannot take
        if len(items) == 1:
            return [exc]
    middle = len(items) // 2
    return _write(session, items[:middle], now, series_length) + _write(session, items[middle:], now, series_length)


def _open_transaction(session: Session) -> None:
    """SQLite: savepoints inside a real transaction (the sqlite3 module opens one lazily)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.driver_connection.in_transaction:
        connection.exec_driver_sql("BEGIN")


def _reason(exc: Exception) -> str:
    if isinstance(exc, IntakeError):
        return str(exc)
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"the database refused the visit: {str(exc.orig).strip().splitlines()[0]}"
    return f"the visit could not be stored: {exc}"


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _instant(value: datetime) -> str:
    """A FHIR instant in UTC, to the second: 2026-12-06T10:00:00Z."""
    return value.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["FhirError", "SyncReport", "sync", "cancel_visit"]
