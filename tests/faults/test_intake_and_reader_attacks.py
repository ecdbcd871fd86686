"""Issue 25, items 5 and 6, replayed as the attacks that found them, against the real processes.

5. A CSV whose `medications_to_hold` cell opens a quote and never closes it took the next rows into
   that cell: the import said 1 created, 0 rejected, exit 0, two visits never existed, and the first
   patient's preparation email carried the other patients' phone numbers. A single NUL byte
   rejected the whole file. Here the files go in with the `reminders import` CLI, as an operator
   runs it against the clinic's database, while web, worker and beat run; then what staff see
   through the API and what the patients are sent (beat's pass, the worker, the SMTP server).
6. Present-tense overdose intent and look-alike letters (a Cyrillic i in "kill") passed as ordinary
   free text. Here each is texted through Twilio's signed webhook to the running web process: the
   patient's answer carries 911 and 988, and the on-call phone and mailbox are alerted within 30 s.

`pytest -s` prints the figures (service.report).
"""
from __future__ import annotations

import json
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.processes import BEAT_WAIT, STAFF_EMAIL, cli_result, running_service, signed_text, utcnow, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.processes]

ALERT_WAIT = 30.0  # the promise to on-call for the reader's texts
HEADER = ("external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,"
          "starts_at,duration_minutes,location,status,language,condition,medications_to_hold")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_service(tmp_path_factory.mktemp("intake-reader")) as running:
        yield running


def first_infusion_starts() -> str:
    """A first infusion whose 72-hour preparation email (the full instructions) is due now."""
    return (utcnow() + timedelta(hours=71, minutes=30)).astimezone(NEW_YORK).replace(microsecond=0).isoformat()


def row(visit: str, patient: str, first: str, last: str, phone: str, email: str, note: str, starts: str) -> str:
    return (f"{visit},{patient},{first},{last},{phone},{email},America/New_York,both,induction,{starts},50,,"
            f"scheduled,en,,{note}")


def import_file(service, name: str, content: str, *args: str):
    path = service.base / name
    path.write_bytes(content.encode("utf-8"))
    return cli_result(service.env, "import", str(path), *args)


def patient(service, external_id: str) -> dict | None:
    """GET /api/v1/patients/<id> as the clinic's other systems call it; None for a 404."""
    answer = requests.get(f"{service.web_url}/api/v1/patients/{external_id}", timeout=30,
                          headers={"Authorization": f"Bearer {service.token}"})
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return answer.json()


def mails_to(service, address: str) -> list[str]:
    return [mail.message.get_body(("plain", "html")).get_content()
            for mail in list(service.smtp.messages) if address in mail.rcpt_tos]


def digits(phone: str) -> str:
    return phone[-10:]


# ---------------------------------------------------------------- item 5: CSV intake

# The first patient's note opens a quote and never closes it: the two rows below would be its text.
MAYA = dict(visit="q-v1", patient="q-p1", first="Maya", last="Lopez", phone="+16175550301",
            email="maya.q@example.org", note='"Hold lamotrigine the morning of')
SAM = dict(visit="q-v2", patient="q-p2", first="Sam", last="Okafor", phone="+16175550302",
           email="sam.q@example.org", note="No Adderall that morning")
LEE = dict(visit="q-v3", patient="q-p3", first="Lee", last="Park", phone="+16175550303",
           email="lee.q@example.org", note="")
QUOTED = (MAYA, SAM, LEE)
# A NUL in the middle row's last name (a damaged export): that row, and only that row, is refused.
NUL_ROWS = (
    dict(visit="n-v1", patient="n-p1", first="Ana", last="Silva", phone="+16175550311",
         email="ana.n@example.org", note=""),
    dict(visit="n-v2", patient="n-p2", first="Ben", last="Oka\x00for", phone="+16175550312",
         email="ben.n@example.org", note=""),
    dict(visit="n-v3", patient="n-p3", first="Cy", last="Moss", phone="+16175550313",
         email="cy.n@example.org", note="Half the usual clonazepam"),
)


@pytest.fixture(scope="module")
def imports(service):
    """Both files imported at once (beat's next pass sends for both)."""
    starts = first_infusion_starts()
    quoted = "\n".join([HEADER, *(row(**r, starts=starts) for r in QUOTED)]) + "\n"
    nul = "\n".join([HEADER, *(row(**r, starts=starts) for r in NUL_ROWS)]) + "\n"
    return {"starts": starts, "quoted": quoted, "quoted_run": import_file(service, "quoted.csv", quoted),
            "nul_run": import_file(service, "nul.csv", nul, "--json")}


def test_an_unclosed_quote_costs_its_own_row_by_line_and_no_patient_is_sent_anothers_data(service, imports):
    with service.logs_on_failure():
        done = imports["quoted_run"]
        output = done.stdout + done.stderr
        # The operator is told which row and which lines, and the exit code says not everything went in.
        assert done.returncode == 1, output
        assert ("line 2: rejected (q-v1): a quoted field opened on line 2 is not closed; "
                "lines 2-4 were read as one field") in done.stderr, output
        assert "3 rows: 2 created, 0 updated, 0 unchanged, 1 rejected" in done.stdout, output
        # Staff see the two rows after it as the visits they are, with their own notes; the refused
        # row was not half-booked.
        assert patient(service, "q-p1") is None
        sam, lee = patient(service, "q-p2"), patient(service, "q-p3")
        assert (sam["medications_to_hold"], sam["phone"]) == ("No Adderall that morning", SAM["phone"])
        assert (lee["medications_to_hold"], lee["phone"]) == ("", LEE["phone"])
        for visit in ("q-v2", "q-v3"):
            assert service.api("GET", f"/api/v1/appointments/{visit}")["status"] == "scheduled"

        # The clinic closes the quote and imports the same file again: Maya goes in, the others stay.
        fixed = imports["quoted"].replace(MAYA["note"], MAYA["note"] + '"')
        again = import_file(service, "quoted-fixed.csv", fixed)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "3 rows: 1 created, 0 updated, 2 unchanged, 0 rejected" in again.stdout, again.stdout
        assert patient(service, "q-p1")["medications_to_hold"] == "Hold lamotrigine the morning of"

        # Beat's pass and the worker send each patient the full preparation email: her own note, and
        # nothing of another row.
        started = utcnow()
        wait_for(lambda: all(mails_to(service, r["email"]) for r in QUOTED), BEAT_WAIT,
                 "the preparation emails of the three patients")
        took = (utcnow() - started).total_seconds()
        for r in QUOTED:
            [email] = mails_to(service, r["email"])
            note = r["note"].strip('"')
            if note:
                assert f"Medications: {note}." in email, email
            else:
                assert "Medications: take your usual medications" in email, email
            for other in QUOTED:
                if other is not r:
                    assert digits(other["phone"]) not in email, (r["patient"], email)
                    assert not re.search(rf"\b{other['first']}\b", email), (r["patient"], email)
            assert "q-v" not in email and "q-p" not in email, email
        texts = [m for m in list(service.twilio.messages) if m["to"] in {r["phone"] for r in QUOTED}]
        assert texts and not any(digits(other["phone"]) in m["body"] for m in texts for other in QUOTED)
        service.report(f"unclosed quote: import exit 1, 2 created 1 rejected (line 2, lines 2-4 named); the fixed "
                       f"file adds it (1 created, 2 unchanged); 3 preparation emails {took:.0f} s later, "
                       f"each with its own note only")


def test_a_nul_byte_rejects_its_own_row_and_the_rest_of_the_file_goes_in_and_out(service, imports):
    with service.logs_on_failure():
        done = imports["nul_run"]
        assert done.returncode == 1, done.stdout + done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert (report["rows"], report["created"], report["rejected"]) == (3, 2, 1), report
        assert report["errors"] == [{"line": 3, "external_id": "n-v2",
                                     "reasons": ["last_name contains a NUL character"]}], report
        assert patient(service, "n-p2") is None
        assert [patient(service, p)["last_name"] for p in ("n-p1", "n-p3")] == ["Silva", "Moss"]
        # The rows either side of it are sent their preparation, as any row is.
        wait_for(lambda: all(mails_to(service, r["email"]) for r in NUL_ROWS[::2]), BEAT_WAIT,
                 "the preparation emails of the rows either side of the NUL")
        assert "Medications: Half the usual clonazepam." in mails_to(service, NUL_ROWS[2]["email"])[0]
        assert not mails_to(service, NUL_ROWS[1]["email"])
        assert not [m for m in list(service.twilio.messages) if m["to"] == NUL_ROWS[1]["phone"]]
        service.report("NUL byte: import exit 1, 2 created 1 rejected (line 3, last_name named); the other 2 "
                       "patients got their preparation emails, the refused row nothing")


# ---------------------------------------------------------------- item 6: the reader under attack

# (what the attacker texted, what the finding said of it)
READER_TEXTS = (
    ("about to swallow all my sleeping pills", "overdose intent, 'about to'"),
    ("I'm going to take every pill I have", "overdose intent, 'going to'"),
    ("I\u2019m going to take every pill I have", "overdose intent, a phone's curly apostrophe"),
    ("k\u0456ll myself", "a Cyrillic i in kill"),
)


@pytest.mark.parametrize("number, body, what", [(n, body, what) for n, (body, what) in enumerate(READER_TEXTS)],
                         ids=[what for _body, what in READER_TEXTS])
def test_a_text_the_reader_once_missed_is_answered_with_911_and_988_and_pages_on_call_within_30_s(
        service, number, body, what):
    with service.logs_on_failure():
        phone = f"+1617555{number + 401:04d}"
        service.api("POST", "/api/v1/patients", {"external_id": f"reader-{number}", "first_name": "Robin",
                                                  "phone": phone, "timezone": "America/New_York"})
        texts_before, mails_before = len(service.staff_texts()), len(service.staff_mails())
        posted = utcnow()
        answer = signed_text(service, body, phone).text
        assert "911" in answer and "988" in answer, answer
        assert "<Response>" in answer
        sms = wait_for(lambda: service.staff_texts()[texts_before:], ALERT_WAIT, f"the on-call SMS for {what}")
        sms_after = (sms[0]["received_at"] - posted).total_seconds()
        wait_for(lambda: service.staff_mails()[mails_before:], ALERT_WAIT - sms_after, f"the on-call email for {what}")
        mail_after = (utcnow() - posted).total_seconds()
        assert body not in sms[0]["body"]  # nothing private on a lock screen
        mails = service.staff_mails()[mails_before:]
        assert any(body in m.message.get_body(("plain", "html")).get_content() for m in mails)
        assert all(STAFF_EMAIL in m.rcpt_tos for m in mails)
        [escalation] = [e for e in service.api("GET", "/api/v1/escalations?status=open")["escalations"]
                        if e["patient_external_id"] == f"reader-{number}"]
        first_number = re.search(r"\b(911|988)\b", answer).group(1)
        service.acknowledge_open_escalations()
        service.report(f"reader, {what}: answered {first_number} first ({escalation['reason']}); on-call SMS after "
                       f"{sms_after:.1f} s, email after {mail_after:.1f} s")
