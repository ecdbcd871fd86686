"""The audit log is tamper-evident: each row carries the hash of the one before it, `reminders
audit verify` names the first broken link, and the application never changes or deletes a row."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, delete, select, text, update

from reminders.migrations import alembic_config, upgrade
from reminders.models import AuditEntry, utcnow
from reminders.models.staff import AuditRowsAreFinal
from tests.fixtures.staff import login, make_user

ROOT = Path(__file__).resolve().parent.parent


def verify_cli(database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "reminders.cli", "audit", "verify"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def add_entries(sessions, count: int, actor: str = "nurse@clinic.test") -> None:
    with sessions() as session:
        for n in range(count):
            session.add(AuditEntry(actor=actor, action="view_patient", target_type="patient", target_id=n + 1,
                                   detail={"n": n, "note": "café"}))
            session.commit()


def test_verify_reports_ok_then_names_the_first_row_edited_in_the_database(app, settings, sessions):
    make_user(sessions, "admin@clinic.test", "admin")
    assert login(app.test_client(), "admin@clinic.test").status_code == 302  # the app writes its rows
    add_entries(sessions, 4)
    with sessions() as session:
        ids = session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
        assert all(session.get(AuditEntry, i).hash for i in ids)
    url = settings.effective_database_url

    ok = verify_cli(url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"OK: {len(ids)} audit rows, the chain is intact" in ok.stdout

    victim = ids[2]
    engine = create_engine(url)
    with engine.begin() as connection:  # someone edits a row behind the application's back
        connection.execute(text("UPDATE audit_log SET actor = 'someone-else@clinic.test' WHERE id = :id"),
                           {"id": victim})
    engine.dispose()
    broken = verify_cli(url)
    assert broken.returncode == 1
    assert f"BROKEN: audit row {victim} " in broken.stdout and "contents do not match its hash" in broken.stdout


def test_a_deleted_row_breaks_the_link_of_the_row_after_it(settings, sessions):
    add_entries(sessions, 5)
    with sessions() as session:
        ids = session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
    engine = create_engine(settings.effective_database_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[1]})
    engine.dispose()
    broken = verify_cli(settings.effective_database_url)
    assert broken.returncode == 1 and f"audit row {ids[2]} " in broken.stdout and "link" in broken.stdout


def test_the_application_refuses_to_change_or_delete_audit_rows(sessions):
    add_entries(sessions, 2)
    with sessions() as session:
        entry = session.scalar(select(AuditEntry))
        entry.actor = "rewritten@clinic.test"
        with pytest.raises(AuditRowsAreFinal):
            session.commit()
        session.rollback()
        session.delete(session.scalar(select(AuditEntry)))
        with pytest.raises(AuditRowsAreFinal):
            session.commit()
        session.rollback()
        with pytest.raises(AuditRowsAreFinal):
            session.execute(update(AuditEntry).values(actor="x"))
        with pytest.raises(AuditRowsAreFinal):
            session.execute(delete(AuditEntry))
    with sessions() as session:
        assert {e.actor for e in session.scalars(select(AuditEntry))} == {"nurse@clinic.test"}


def test_no_code_writes_to_audit_rows():
    """Besides the ORM guard: nothing in the package updates or deletes audit rows in SQL either (the
    0013 migration chains the rows that were there before, once)."""
    pattern = re.compile(r"(update|delete)\(\s*AuditEntry|(UPDATE|DELETE\s+FROM)\s+audit_log", re.IGNORECASE)
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "reminders").rglob("*.py")
                 if pattern.search(path.read_text()) and path.name != "0013_staff_security.py"]
    assert offenders == []


def test_the_migration_chains_rows_written_before_it(tmp_path, configure):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    configure(DATABASE_URL=url)
    command.upgrade(alembic_config(url), "0012_screen_negative")
    engine = create_engine(url)
    with engine.begin() as connection:
        for n in range(3):
            connection.execute(text("INSERT INTO audit_log (at, actor, action, target_type, target_id, detail) "
                                    "VALUES (:at, 'a@clinic.test', 'login', 'staff_user', :n, :detail)"),
                               {"at": utcnow().replace(tzinfo=None).isoformat(sep=" "), "n": str(n),
                                "detail": '{"b": 1, "a": [1, 2]}'})
    engine.dispose()
    upgrade(url)
    result = verify_cli(url)
    assert result.returncode == 0 and "OK: 3 audit rows" in result.stdout, result.stdout + result.stderr


@pytest.mark.postgres
def test_concurrent_writers_do_not_fork_the_chain_on_postgres(pg_settings):
    from reminders.audit_chain import verify
    from reminders.db import session_factory

    sessions = session_factory(pg_settings.effective_database_url)
    errors = []

    def writer(name: str):
        try:
            add_entries(sessions, 15, actor=f"{name}@clinic.test")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sessions() as session:
        verdict = verify(session)
        assert verdict.ok and verdict.rows == 60, verdict.describe()
        links = session.scalars(select(AuditEntry.prev_hash)).all()
        assert len(set(links)) == 60  # no two rows link to the same one
    result = verify_cli(pg_settings.effective_database_url)
    assert result.returncode == 0, result.stdout + result.stderr
