"""Three locations in three time zones, run as a clinic runs it: `reminders location add`, a CSV
import, `reminders tick` at chosen instants, and `reminders run` taking a crisis text. Each patient's
texts come from their location's number with its address, wait for the patient's own morning, and a
crisis text reaches that location's on-call only."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from tests.fakes.twilio_server import FakeTwilio
from tests.test_out_of_the_box import (CSV_HEADER, ROOT, bare_environment, free_port, post_signed_text,
                                       start_run, stop_run, wait_for)

LOCATIONS = {
    # code: (name, zone, sender, address, on-call phone, patient phone)
    "manhattan": ("Bright Minds Manhattan", "America/New_York", "+12125550100", "1 Fifth Ave, New York",
                  "+12125550199", "+12025550301"),
    "chicago": ("Bright Minds Chicago", "America/Chicago", "+13125550100", "200 W Madison St, Chicago",
                "+13125550199", "+12025550302"),
    "santa-monica": ("Bright Minds Santa Monica", "America/Los_Angeles", "+13105550100",
                     "300 Ocean Ave, Santa Monica", "+13105550199", "+12025550303"),
}
DEFAULT_SENDER, DEFAULT_ONCALL = "+12025550100", "+12025550199"
ONCALL = {values[4] for values in LOCATIONS.values()} | {DEFAULT_ONCALL}


def cli(home, env, *args):
    done = subprocess.run([sys.executable, "-m", "reminders.cli", *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def seven_in_the_morning_in_los_angeles() -> datetime:
    """An instant ten days ahead when it is 07:00 in Los Angeles (quiet hours), 09:00 in Chicago and
    10:00 in New York."""
    day = (datetime.now(timezone.utc) + timedelta(days=10)).astimezone(ZoneInfo("America/Los_Angeles")).date()
    return datetime(day.year, day.month, day.day, 7, 0, tzinfo=ZoneInfo("America/Los_Angeles")).astimezone(timezone.utc)


def test_three_locations_text_from_their_own_numbers_in_their_patients_mornings_and_page_their_own_oncall(tmp_path):
    due = seven_in_the_morning_in_los_angeles()
    starts = due + timedelta(hours=72)  # each first infusion's 72-hour reminder is due at `due`
    with FakeTwilio() as twilio:
        port = free_port()
        env = {**bare_environment(tmp_path), "PYTHONPATH": str(ROOT), "TWILIO_ACCOUNT_SID": twilio.account_sid,
               "TWILIO_AUTH_TOKEN": twilio.auth_token, "TWILIO_FROM": DEFAULT_SENDER,
               "TWILIO_API_BASE_URL": twilio.url, "STAFF_ALERT_PHONES": DEFAULT_ONCALL,
               "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "MEASURES_ENABLED": "false"}
        cli(tmp_path, env, "init")
        for code, (name, zone, sender, address, oncall, _) in LOCATIONS.items():
            cli(tmp_path, env, "location", "add", code, "--name", name, "--timezone", zone, "--sender", sender,
                "--address", address, "--oncall-phones", oncall)
        rows = [f"v-{code},p-{code},Pat,{code.title()},{phone},,{zone},sms,induction,{starts.isoformat()},50,{code},\n"
                for code, (_, zone, _, _, _, phone) in LOCATIONS.items()]
        (tmp_path / "visits.csv").write_text(CSV_HEADER + "".join(rows))
        cli(tmp_path, env, "import", "visits.csv")

        def texts_to(phone):
            return [m for m in twilio.messages if m["to"] == phone]

        cli(tmp_path, env, "tick", "--now", due.isoformat())
        for code in ("manhattan", "chicago"):  # 10:00 and 09:00 there
            name, _, sender, address, _, phone = LOCATIONS[code]
            got = texts_to(phone)
            assert got and {m["from_"] for m in got} == {sender}, got
            reminder = [m["body"] for m in got if "first infusion" in m["body"]]
            assert len(reminder) == 1 and name in reminder[0] and address in reminder[0], reminder
        la_phone = LOCATIONS["santa-monica"][5]
        assert texts_to(la_phone) == []  # 07:00 in Los Angeles: quiet hours

        cli(tmp_path, env, "tick", "--now", (due + timedelta(minutes=59)).isoformat())
        assert texts_to(la_phone) == []
        cli(tmp_path, env, "tick", "--now", (due + timedelta(hours=1)).isoformat())  # 08:00 there
        name, _, sender, address, _, _ = LOCATIONS["santa-monica"]
        got = texts_to(la_phone)
        assert got and {m["from_"] for m in got} == {sender}
        assert [m["body"] for m in got if "first infusion" in m["body"] and address in m["body"]]
        sent_before = len(twilio.messages)
        cli(tmp_path, env, "tick", "--now", (due + timedelta(hours=1)).isoformat())
        assert len(twilio.messages) == sent_before  # nothing twice
        assert not [m for m in twilio.messages if m["to"] in ONCALL]

        process, lines = start_run(tmp_path, env, port)
        try:
            assert wait_for(lambda: any("Serving on" in line for line in lines), 120), "".join(lines)
            _, _, chicago_sender, _, chicago_oncall, chicago_phone = LOCATIONS["chicago"]
            answer = post_signed_text(port, twilio.auth_token, "i want to end my life tonight",
                                      from_=chicago_phone, to=chicago_sender, account_sid=twilio.account_sid)
            assert "988" in answer
            alerts = wait_for(lambda: [m for m in twilio.messages if m["to"] in ONCALL], 60)
            assert [(m["to"], m["from_"]) for m in alerts] == [(chicago_oncall, chicago_sender)], "".join(lines)

            # A stranger writing to the Santa Monica number about a patient: that location's on-call.
            _, _, la_sender, _, la_oncall, _ = LOCATIONS["santa-monica"]
            post_signed_text(port, twilio.auth_token, "my brother took all his pills and won't wake up",
                             from_="+16195550177", to=la_sender, account_sid=twilio.account_sid)
            alerts = wait_for(lambda: [m for m in twilio.messages if m["to"] in ONCALL and m["to"] != chicago_oncall], 60)
            assert [(m["to"], m["from_"]) for m in alerts] == [(la_oncall, la_sender)], "".join(lines)
        finally:
            stop_run(process)
