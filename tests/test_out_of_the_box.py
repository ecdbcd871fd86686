"""The commands a newcomer runs, on a machine with nothing configured: real processes."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path


from reminders.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def bare_environment(home: Path) -> dict:
    """The developer's environment without any of the service's settings."""
    names = {name.upper() for name in Settings.model_fields} | {"REMINDERS_DATA_DIR"}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env["HOME"] = str(home)
    return env


def reminders(cwd: Path, *args, timeout=180, input_text=None):
    return subprocess.run([sys.executable, "-m", "reminders.cli", *args], cwd=cwd, env=bare_environment(cwd),
                          capture_output=True, text=True, timeout=timeout, input=input_text)


def test_demo_then_tick_sends_real_messages_to_the_local_outbox(tmp_path):
    demo = reminders(tmp_path, "demo")
    assert demo.returncode == 0, demo.stderr
    assert "Demo clinic loaded" in demo.stdout
    first = reminders(tmp_path, "tick")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert {"planned", "sent", "deferred", "skipped"} <= set(summary)
    assert summary["planned"] > 0 and summary["sent"] > 0
    assert "local outbox" in first.stderr  # the log says where messages went
    lines = (tmp_path / "reminders-data" / "outbox" / "messages.jsonl").read_text().splitlines()
    assert len(lines) == summary["sent"]
    again = json.loads(reminders(tmp_path, "tick").stdout.strip().splitlines()[-1])
    assert again["sent"] == 0
    assert len((tmp_path / "reminders-data" / "outbox" / "messages.jsonl").read_text().splitlines()) == len(lines)


def test_tick_at_a_given_instant_and_twice_at_the_same_instant(tmp_path):
    csv_file = tmp_path / "visits.csv"
    csv_file.write_text(
        "external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,starts_at,duration_minutes,location,status\n"
        "a1,p1,Maya,Lopez,+12025550143,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,Suite 200,\n"
    )
    assert reminders(tmp_path, "import", str(csv_file)).returncode == 0
    first = json.loads(reminders(tmp_path, "tick", "--now", "2026-12-09T10:00:00-05:00").stdout.splitlines()[-1])
    second = json.loads(reminders(tmp_path, "tick", "--now", "2026-12-09T10:00:00-05:00").stdout.splitlines()[-1])
    # The welcome (its own text, before the first), the 24 h reminder and the baseline questionnaire
    # (its first question by text: no PUBLIC_BASE_URL); the overdue 72 h reminder is skipped, and
    # so is the questionnaire's reminder (the questionnaire has only just gone). The 24 h reminder
    # goes as two texts (the second: the after-visit cautions).
    assert (first["sent"], first["skipped"], second["sent"]) == (4, 2, 0)


def test_tick_refuses_a_time_without_offset(tmp_path):
    result = reminders(tmp_path, "tick", "--now", "2026-12-09T10:00:00")
    assert result.returncode == 2 and "no UTC offset" in result.stderr


def test_token_create_prints_the_token_alone_on_its_last_line(tmp_path):
    result = reminders(tmp_path, "token", "create", "--name", "ehr-sync")
    assert result.returncode == 0
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("rem_") and " " not in token and len(token) > 30


def test_user_create_reads_the_password_from_stdin(tmp_path):
    result = reminders(tmp_path, "user", "create", "--email", "nurse@clinic.test", "--role", "staff",
                       input_text="correct horse battery\n")
    assert result.returncode == 0, result.stderr
    assert "created staff nurse@clinic.test" in result.stdout
    short = reminders(tmp_path, "user", "create", "--email", "x@clinic.test", input_text="short\n")
    assert short.returncode == 1 and "at least" in short.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_serves_the_ui_and_health_and_says_where_things_are(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "reminders.cli", "run", "--port", str(port)], cwd=tmp_path,
                               env=bare_environment(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read_output():
        for line in process.stdout:
            lines.append(line)
            if "Serving on" in line:
                ready.set()

    threading.Thread(target=read_output, daemon=True).start()
    try:
        assert ready.wait(120), "".join(lines)
        output = "".join(lines)
        assert f"Staff UI:     http://127.0.0.1:{port}/" in output
        assert f"Local outbox: {tmp_path / 'reminders-data' / 'outbox'}" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            health = json.loads(response.read())
        assert health["status"] == "ok" and "missing" not in health
        # Its own scheduler is worker and beat at once (reported, never a reason to fail).
        assert health["worker"]["in_process"] and health["beat"]["in_process"]
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_running_the_module_without_installing_works_from_the_repo(tmp_path):
    result = subprocess.run([sys.executable, "-m", "reminders.cli", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for command in ("init", "demo", "run", "tick", "import", "user", "token"):
        assert command in result.stdout


# ---------------------------------------------------------------- `reminders run`, as a clinic runs it

CSV_HEADER = ("external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,"
              "starts_at,duration_minutes,location,status\n")


# Region zones around the world (fixed offsets like Etc/GMT+5 are refused as patients' zones).
WORLD_ZONES = ("Pacific/Pago_Pago", "Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Denver",
               "America/Chicago", "America/New_York", "America/Halifax", "America/Sao_Paulo", "Atlantic/South_Georgia",
               "Atlantic/Azores", "Europe/London", "Europe/Paris", "Europe/Athens", "Europe/Moscow", "Asia/Dubai",
               "Asia/Karachi", "Asia/Dhaka", "Asia/Bangkok", "Asia/Singapore", "Asia/Tokyo", "Australia/Brisbane",
               "Pacific/Noumea", "Pacific/Auckland", "Pacific/Kiritimati")


def daytime_zone() -> str:
    """A real IANA region zone where it is about noon now, so quiet hours never hold a message back."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    now = datetime.now(timezone.utc)
    return min(WORLD_ZONES, key=lambda zone: abs(now.astimezone(ZoneInfo(zone)).hour - 12))


def visits_due_now(count: int) -> str:
    """`count` second infusions 23 h 30 min from now: each one's 24 h reminder is due at once."""
    from datetime import datetime, timedelta, timezone

    starts = (datetime.now(timezone.utc) + timedelta(hours=23, minutes=30)).replace(microsecond=0).isoformat()
    rows = [f"v{i},p{i},Pat{i},Example,+1202555{i:04d},,{daytime_zone()},sms,induction,{starts},50,Suite 200,\n"
            for i in range(count)]
    return CSV_HEADER + "".join(rows)


def import_visits_due_now(home: Path, env: dict, count: int) -> None:
    (home / "visits.csv").write_text(visits_due_now(count))
    imported = subprocess.run([sys.executable, "-m", "reminders.cli", "import", "visits.csv"], cwd=home, env=env,
                              capture_output=True, text=True, timeout=180)
    assert imported.returncode == 0, imported.stderr


def outbox_lines(home: Path) -> list[dict]:
    path = home / "reminders-data" / "outbox" / "messages.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def patient_texts(home: Path, at_least: int = 0) -> list[dict]:
    """The reminders that went to patients (each patient's welcome text and questionnaire, their
    own messages, aside)."""
    texts = [m for m in outbox_lines(home)
             if m["to"].startswith("+1202555000") and not is_welcome(m) and not is_questionnaire(m)]
    return texts if len(texts) >= at_least else []


def is_questionnaire(message: dict) -> bool:
    return "/q/" in message["body"] or "a few short questions" in message["body"]


def questionnaires(home: Path) -> list[str]:
    return sorted(m["to"] for m in outbox_lines(home) if m["to"].startswith("+1202555000") and is_questionnaire(m))


def is_welcome(message: dict) -> bool:
    return "Msg & data rates may apply" in message["body"]


def welcomes(home: Path) -> list[str]:
    return sorted(m["to"] for m in outbox_lines(home) if m["to"].startswith("+1202555000") and is_welcome(m))


def staff_alerts(home: Path) -> list[dict]:
    return [m for m in outbox_lines(home) if m["to"] in ("oncall@clinic.test", "+12025550101")]


def wait_for(check, limit: float):
    """Poll `check` until it is truthy or `limit` seconds pass (a bound on a hang, not a pace)."""
    import time

    deadline = time.monotonic() + limit
    pause = threading.Event()
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        pause.wait(0.25)


def strict_health(port: int) -> dict:
    """/healthz?strict=1's body, also while it answers 503 (degraded until both heartbeats land)."""
    import urllib.error

    try:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz?strict=1", timeout=5).read())
    except urllib.error.HTTPError as refused:
        if refused.code != 503:
            raise
        return json.loads(refused.read())


def post_signed_text(port: int, auth_token: str, body: str, from_: str = "+12025550188",
                     to: str = "+15005550006", account_sid: str = "AC" + "0" * 32) -> str:
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    url = f"http://127.0.0.1:{port}/twilio/sms"
    form = {"MessageSid": "SM" + os.urandom(16).hex(), "AccountSid": account_sid, "From": from_,
            "To": to, "Body": body, "NumMedia": "0"}
    request = urllib.request.Request(url, data=urlencode(form).encode(), headers={
        "X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, form)})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


def start_run(home: Path, env: dict, port: int) -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen([sys.executable, "-m", "reminders.cli", "run", "--port", str(port)], cwd=home, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    return process, lines


def stop_run(process: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def test_reminders_run_alone_sends_due_reminders_once_and_alerts_staff_about_a_crisis(tmp_path):
    """The one-process shape (no broker): the scheduler thread sends what is due, and a signed
    crisis text brings the on-call alerts at once. No PUBLIC_BASE_URL: the texts are signed for the
    address they came to, and the baseline questionnaire goes by text and is answered by text."""
    port = free_port()
    env = {**bare_environment(tmp_path), "TWILIO_AUTH_TOKEN": "run-test-token",
           "STAFF_ALERT_EMAILS": "oncall@clinic.test", "STAFF_ALERT_PHONES": "+12025550101"}
    import_visits_due_now(tmp_path, env, 3)
    process, lines = start_run(tmp_path, env, port)
    try:
        # Each patient's day-before reminder and its following text (the after-visit cautions).
        reminders_sent = wait_for(lambda: patient_texts(tmp_path, at_least=6), 120)
        phones = ["+12025550000", "+12025550001", "+12025550002"]
        assert {m["to"] for m in reminders_sent} == set(phones), "".join(lines)
        for phone in phones:  # one reminder each, never twice
            assert sum("Reply C" in m["body"] for m in patient_texts(tmp_path) if m["to"] == phone) == 1

        answer = post_signed_text(port, "run-test-token", "i want to end my life")
        assert "988" in answer and "911" in answer
        alerts = wait_for(lambda: len(staff_alerts(tmp_path)) >= 2 and staff_alerts(tmp_path), 60)
        assert sorted(m["to"] for m in alerts) == ["+12025550101", "oncall@clinic.test"], "".join(lines)

        assert wait_for(lambda: "+12025550000" in questionnaires(tmp_path), 60), "".join(lines)
        assert post_signed_text(port, "run-test-token", "2", from_="+12025550000").count("2 of 9: ") == 1
    finally:
        stop_run(process)
    # Each patient's reminder and its following text (the after-visit cautions), once each.
    assert sorted(m["to"] for m in patient_texts(tmp_path)) == sorted(["+12025550000", "+12025550001", "+12025550002"] * 2)
    assert welcomes(tmp_path) == ["+12025550000", "+12025550001", "+12025550002"]  # once each
    # Each visit is the patient's first infusion: its baseline questionnaire went too, once, by text.
    assert questionnaires(tmp_path) == ["+12025550000", "+12025550001", "+12025550002"]
    assert not any("/q/" in m["body"] for m in outbox_lines(tmp_path))


def test_reminders_run_with_redis_sends_through_its_celery_worker_and_alerts_staff(tmp_path):
    """`reminders run` with REDIS_URL: the web server and a Celery worker with beat beside it."""
    import redis

    from tests.conftest import REDIS_URL

    db = 9 - int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    broker = redis.Redis.from_url(f"{REDIS_URL.rstrip('/')}/{db}")
    broker.flushdb()
    port = free_port()
    env = {**bare_environment(tmp_path), "REDIS_URL": f"{REDIS_URL.rstrip('/')}/{db}",
           "TWILIO_AUTH_TOKEN": "run-test-token", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
           "STAFF_ALERT_EMAILS": "oncall@clinic.test", "PYTHONPATH": str(ROOT)}
    import_visits_due_now(tmp_path, env, 2)
    process, lines = start_run(tmp_path, env, port)
    try:
        assert wait_for(lambda: any("Serving on" in line for line in lines), 120), "".join(lines)
        assert any("Celery with beat" in line for line in lines)
        # The worker asks for a pass as soon as it is ready: no minute's wait for beat.
        # Each patient's day-before reminder, then its following text (the after-visit cautions).
        sent = wait_for(lambda: patient_texts(tmp_path, at_least=4), 120)
        for phone in ("+12025550000", "+12025550001"):
            theirs = [m["body"] for m in sent if m["to"] == phone]
            assert len(theirs) == 2 and "Reply C" in theirs[0] and "After your infusion" in theirs[1], theirs

        answer = post_signed_text(port, "run-test-token", "me quiero suicidar")
        assert "988" in answer and "marque 2" in answer
        alerts = wait_for(lambda: [m for m in outbox_lines(tmp_path) if m["to"] == "oncall@clinic.test"], 60)
        assert len(alerts) == 1, "".join(lines)

        # The Celery worker and its embedded beat leave heartbeats in Redis: /healthz sees both.
        health = wait_for(lambda: (lambda body: body if body["status"] == "ok" else None)(strict_health(port)), 60)
        assert health and health["worker"]["ok"] and health["beat"]["ok"], "".join(lines)
        assert health["beat"]["last_pass"]  # the pass the worker asked for when it started
    finally:
        stop_run(process)
        broker.flushdb()
        broker.close()
