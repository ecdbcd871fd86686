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
    reminders(tmp_path, "init")
    csv_file = tmp_path / "visits.csv"
    csv_file.write_text(
        "external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,starts_at,duration_minutes,location,status\n"
        "a1,p1,Maya,Lopez,+12025550143,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,Suite 200,\n"
    )
    assert reminders(tmp_path, "import", str(csv_file)).returncode == 0
    first = json.loads(reminders(tmp_path, "tick", "--now", "2026-12-09T10:00:00-05:00").stdout.splitlines()[-1])
    second = json.loads(reminders(tmp_path, "tick", "--now", "2026-12-09T10:00:00-05:00").stdout.splitlines()[-1])
    assert (first["sent"], first["skipped"], second["sent"]) == (1, 1, 0)


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
            assert json.loads(response.read())["status"] == "ok"
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_running_the_module_without_installing_works_from_the_repo(tmp_path):
    result = subprocess.run([sys.executable, "-m", "reminders.cli", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for command in ("init", "demo", "run", "tick", "import", "user", "token"):
        assert command in result.stdout
