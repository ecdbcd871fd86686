"""Issue 25, items 7 and 8, replayed as the attacks that found them, against the real web process.

7. Security. The sign-in said "4 more tries before the account is locked" only for a real email
   (account enumeration), and five anonymous requests locked any account, every admin included, for
   15 minutes; /account/password took 30 wrong current passwords; a template preview of
   `('a'*20000).replace('a','a'*20000)` grew the web process by 381 MB before a limit caught it
   (a larger one kills it); API answers lacked nosniff and no-store, and there was no HSTS.
8. Robustness. checkins.csv, measures.csv and report.pdf were 500s for a patient whose record id
   holds non-Latin-1 characters, a newline or U+2028; log redaction mangled task ids and durations
   ("succeeded in ***86s"); texts with no From all joined one "unknown number" escalation.

The web process runs as compose runs it, callers reaching it directly: each caller (the attacker's
machines, the admin's desk) connects from an address of its own on the loopback network
(127.x.y.z). Then the web process is started again as it runs behind a clinic's HTTPS proxy
(TRUSTED_PROXY_HOPS=1): every caller comes from the proxy's address, told apart only by
X-Forwarded-For, and HTTPS is known only from X-Forwarded-Proto. Staff accounts are made with
`reminders user create`. `pytest -s` prints the figures (service.report).
"""
from __future__ import annotations

import csv
import io
import re
import statistics
import time
import unicodedata
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import text
from twilio.request_validator import RequestValidator
from werkzeug.http import parse_options_header

from tests.fixtures.staff import enrol_mfa_at, mfa_code
from tests.fixtures.twoway import Twilio as SignedTwilio
from tests.processes import (BEAT_WAIT, CRISIS_WAIT, SEND_TASKS, START_WAIT, Process, cli_result, running_service,
                             signed_text, utcnow, wait_for)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.processes]

ADMIN = ("director@clinic.test", "correct horse battery staple", "admin")
NURSE = ("nurse@clinic.test", "night shift 2 passphrase", "staff")
NIGHT = ("night@clinic.test", "another long passphrase", "staff")
NOBODY = "nobody@clinic.test"
WRONG = "That email and password do not match an active account."
THROTTLED = re.compile(r"^Too many attempts: try again in \d+ seconds?\.$")
RETRY_WAIT = 90.0  # the longest delay (60 s) and a loaded machine
MEMORY_BOUND_MB = 64  # what the web process's peak may grow by for all the previews (381 MB before)
PREVIEW = "first_induction_72h.sms.j2"
BOMBS = (
    ("replace", "{{ ('a'*20000).replace('a','a'*20000)|length }}"),
    ("join", "{{ ('a'*20000).join('a'*20000)|length }}"),
    ("join filter", "{{ ('a'*20000)|join('a'*20000)|length }}"),
    ("larger replace", "{{ ('a'*99999).replace('a','a'*99999)|length }}"),
)
ODD_IDS = ("Nguyễn-7", "患者-12", "line\nbreak-3", "line\u2028sep-4", "cr\r\nlf-5")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_service(tmp_path_factory.mktemp("staff-attacks")) as running:
        for email, password, role in (ADMIN, NURSE, NIGHT):
            done = cli_result(running.env, "user", "create", "--email", email, "--role", role, "--password-stdin",
                              input=password + "\n")
            assert done.returncode == 0 and f"created {role} {email}" in done.stdout, done.stdout + done.stderr
        # Admins sign in with a code too (two-step sign-in): the director's phone app is set up.
        enrol_mfa_at(running.env["DATABASE_URL"], running.env["SECRET_KEY"], ADMIN[0])
        # A reminder due now: beat and the worker send it while the attacks run (the log check at the end).
        running.book_visits("logs", 1, 617)
        yield running


class FromAddress(HTTPAdapter):
    """Connections from one loopback address (127.x.y.z): a caller of its own, as the web process sees it."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Browser:
    """A person (or a script) at one address: its own (connecting from it), or, `via_proxy`, the one
    the clinic's proxy reports in X-Forwarded-For (every connection then comes from the proxy)."""

    def __init__(self, service, address: str, via_proxy: bool = False):
        self.url = service.web_url
        self.env = service.env
        self.http = requests.Session()
        if via_proxy:
            self.http.headers["X-Forwarded-For"] = address
        else:
            self.http.mount("http://", FromAddress(address))

    def token(self, path: str) -> str:
        page = self.http.get(self.url + path, timeout=30)
        assert page.status_code == 200, (path, page.status_code)
        return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)

    def post_form(self, path: str, form: dict, token_from: str | None = None) -> requests.Response:
        token = self.token(token_from or path)
        return self.http.post(self.url + path, data={"csrf_token": token, **form}, allow_redirects=False, timeout=60)

    def sign_in(self, email: str, password: str) -> requests.Response:
        answer = self.post_form("/login", {"email": email, "password": password, "next": ""})
        if answer.status_code == 302 and answer.headers["Location"] == "/login/code":  # an admin: the app's code
            code = mfa_code(email, database_url=self.env["DATABASE_URL"], secret_key=self.env["SECRET_KEY"])
            answer = self.post_form("/login/code", {"code": code})
        return answer

    def signed_in_as(self, email: str, password: str) -> Browser:
        answer = self.sign_in(email, password)
        assert answer.status_code == 302, (answer.status_code, error_of(answer))
        return self

    def preview(self, source: str, name: str = PREVIEW) -> requests.Response:
        token = self.token(f"/admin/templates/{name}")
        return self.http.post(f"{self.url}/admin/templates/{name}/preview", json={"source": source},
                              headers={"X-CSRFToken": token}, timeout=60)


def error_of(answer: requests.Response) -> str | None:
    found = re.search(r'id="(?:login|password)-error">([^<]*)<', answer.text)
    return found.group(1).replace("&#39;", "'") if found else None


def page_as_seen(answer: requests.Response, email: str) -> str:
    """The page without what differs by request: the CSRF token, the email typed, the seconds to wait."""
    page = re.sub(r'(name="csrf[-_]token" (?:content|value)=)"[^"]+"', r'\1"…"', answer.text)
    return re.sub(r"try again in \d+ seconds?", "try again in N seconds", page.replace(email, "EMAIL"))


def web_memory(service) -> tuple[int, int]:
    """The web process's (resident, peak resident) kilobytes, its children included (waitress serves
    with threads in the `reminders web` process itself; a child would be counted too)."""
    pids = [service.web.popen.pid]
    children = Path(f"/proc/{pids[0]}/task/{pids[0]}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    rss = peak = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        rss += int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))
        peak += int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))
    return rss, peak


# ---------------------------------------------------------------- item 7: staff sign-in and the preview


def test_sign_in_answers_a_known_and_an_unknown_email_alike_wrong_password_after_wrong_password(service):
    with service.logs_on_failure():
        series = {}
        for email, address in ((NURSE[0], "127.0.2.1"), (NOBODY, "127.0.2.2")):
            browser, answers = Browser(service, address), []
            for _attempt in range(15):  # until the delays start (after 5)
                started = time.monotonic()
                answer = browser.sign_in(email, "Guess-1234567")
                answers.append((answer, time.monotonic() - started))
                if answer.status_code == 429:
                    break
            series[email] = answers
        known, unknown = series[NURSE[0]], series[NOBODY]
        for answers in (known, unknown):
            statuses = [answer.status_code for answer, _ in answers]
            assert statuses[:5] == [401] * 5 and statuses[-1] == 429 and set(statuses) == {401, 429}, statuses
            assert all(error_of(a) == WRONG for a, _ in answers if a.status_code == 401)
            assert THROTTLED.match(error_of(answers[-1][0])), error_of(answers[-1][0])
            assert int(answers[-1][0].headers["Retry-After"]) >= 1
            for answer, _ in answers:
                assert not re.search(r"lock|tries|remaining|attempts left", answer.text, re.IGNORECASE), answer.text
        # The pages themselves are the same, byte for byte, but for the token and the email typed.
        assert page_as_seen(known[0][0], NURSE[0]) == page_as_seen(unknown[0][0], NOBODY)
        assert page_as_seen(known[-1][0], NURSE[0]) == page_as_seen(unknown[-1][0], NOBODY)
        # And as slow: an unknown email's password is checked against a stand-in hash.
        known_time = statistics.median(t for a, t in known if a.status_code == 401)
        unknown_time = statistics.median(t for a, t in unknown if a.status_code == 401)
        assert unknown_time > known_time / 3, (known_time, unknown_time)
        service.report(f"sign-in: a known and an unknown email answered alike (401 x{len(known) - 1} then 429 "
                       f"'Too many attempts'; pages equal; median {known_time * 1000:.0f} ms vs "
                       f"{unknown_time * 1000:.0f} ms)")


def test_anonymous_wrong_passwords_for_an_admin_never_keep_the_admin_out(service):
    with service.logs_on_failure():
        email, password, _ = ADMIN
        answers = []
        for n in range(20):  # 20 addresses, one guess each (a botnet)
            answers.append(Browser(service, f"127.0.3.{n + 1}").sign_in(email, f"guess-{n:08d}").status_code)
        one = Browser(service, "127.0.3.99")
        for n in range(20):  # and one address, 20 guesses in a row
            answers.append(one.sign_in(email, f"again-{n:08d}").status_code)
        assert set(answers) <= {401, 429}, answers
        slowed = answers[20:].count(429)
        assert slowed >= 10, answers[20:]  # the one address was held back
        # During the attack, the admin signs in from her own desk at once.
        started = time.monotonic()
        admin = Browser(service, "127.0.4.10")
        answer = admin.sign_in(email, password)
        took = time.monotonic() - started
        assert answer.status_code == 302, (answer.status_code, error_of(answer))
        today = admin.http.get(service.web_url + answer.headers["Location"], timeout=30)
        assert today.status_code == 200 and email in today.text
        # The attacking address still gets no guess in before its wait; the admin's sign-in forgave nothing there.
        assert one.sign_in(email, "again-last").status_code == 429
        service.report(f"lock-out: 40 anonymous wrong passwords for an admin (20 addresses, then 20 from one: "
                       f"{slowed} of those answered 429) locked nothing; the admin signed in at once "
                       f"({took:.1f} s)")


def test_wrong_current_passwords_on_the_password_change_are_slowed_down(service):
    with service.logs_on_failure():
        email, password, _ = NIGHT
        nurse = Browser(service, "127.0.4.20").signed_in_as(email, password)
        statuses = []
        started = time.monotonic()
        for n in range(30):
            answer = nurse.post_form("/account/password", {"current_password": f"wrong-{n:06d}",
                                                           "new_password": "a brand new passphrase",
                                                           "confirm_password": "a brand new passphrase"})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert THROTTLED.match(error_of(answer)) and int(answer.headers["Retry-After"]) >= 1
            else:
                assert answer.status_code == 422 and error_of(answer) == "The current password is not right."
        burst = time.monotonic() - started
        checked = statuses.count(422)
        assert set(statuses) == {422, 429} and statuses[:5] == [422] * 5, statuses
        # After 5, each check waits 1, 2, 4 ... s: a burst gets a few more at most.
        assert checked <= 5 + max(3, int(burst).bit_length() + 1), (checked, burst, statuses)

        # The user herself, once the wait is over, changes her password.
        new = "a brand new passphrase"

        def changed():
            answer = nurse.post_form("/account/password", {"current_password": password, "new_password": new,
                                                           "confirm_password": new})
            if answer.status_code == 429:
                return None
            assert answer.status_code == 302, (answer.status_code, error_of(answer))
            return answer

        waited = time.monotonic()
        wait_for(changed, RETRY_WAIT, "the password change to be heard after the wait", step=0.5)
        waited = time.monotonic() - waited
        Browser(service, "127.0.4.21").signed_in_as(email, new)
        service.report(f"password change: 30 wrong current passwords in {burst:.1f} s, {checked} checked, "
                       f"{30 - checked} answered 429; the right one heard {waited:.1f} s later")


def test_a_template_preview_that_would_build_gigabytes_is_refused_with_the_web_process_memory_bounded(service):
    with service.logs_on_failure():
        admin = Browser(service, "127.0.4.30").signed_in_as(*ADMIN[:2])
        # Warm up: a normal preview, so the baseline has the preview threads and the sandbox loaded.
        normal = "Hi {{ patient.first_name }}, see you {{ visit.date }}. Reply C to confirm."
        for _ in range(2):
            warm = admin.preview(normal)
            assert warm.status_code == 200 and warm.json()["ok"], warm.text
        rss_before, peak_before = web_memory(service)
        took = {}
        for label, source in BOMBS:
            started = time.monotonic()
            answer = admin.preview(source)
            took[label] = time.monotonic() - started
            assert answer.status_code == 422, (label, answer.status_code, answer.text[:500])
            data = answer.json()
            assert data["ok"] is False and "would make something longer than 100000" in data["reason"], data
            assert data["message"].startswith("Line 1: "), data
        # The same source saved (the editor's form) is refused by the same check.
        saved = admin.post_form(f"/admin/templates/{PREVIEW}", {"source": BOMBS[-1][1]})
        assert saved.status_code == 422 and "longer than 100000" in saved.text
        rss_after, peak_after = web_memory(service)
        grew = (peak_after - peak_before) / 1024
        assert grew < MEMORY_BOUND_MB, f"the web process's peak grew by {grew:.0f} MB"
        # The web process answers afterwards: the health check, a preview, a patient's text.
        assert service.web.running
        assert requests.get(service.web_url + "/healthz", timeout=30).status_code == 200
        assert admin.preview(normal).status_code == 200
        slowest = max(took.values())
        service.report(f"preview bomb ({', '.join(label for label, _ in BOMBS)}): each refused 422 in at most "
                       f"{slowest:.2f} s; web peak RSS +{grew:.1f} MB (RSS {rss_before / 1024:.0f} -> "
                       f"{rss_after / 1024:.0f} MB); web still answers")


def test_api_answers_are_nosniff_and_no_store(service):
    with service.logs_on_failure():
        service.api("POST", "/api/v1/patients", {"external_id": "hdr-1", "first_name": "Kai", "phone": "+16175550901",
                                                  "timezone": "America/New_York"})
        bearer = {"Authorization": f"Bearer {service.token}"}
        answers = {
            "200 patient": requests.get(service.web_url + "/api/v1/patients/hdr-1", headers=bearer, timeout=30),
            "404": requests.get(service.web_url + "/api/v1/patients/nobody-here", headers=bearer, timeout=30),
            "401 no token": requests.get(service.web_url + "/api/v1/messages", timeout=30),
            "422": requests.post(service.web_url + "/api/v1/patients", json={"first_name": "x"}, headers=bearer,
                                 timeout=30),
            "405": requests.delete(service.web_url + "/api/v1/patients/hdr-1", headers=bearer, timeout=30),
        }
        assert [a.status_code for a in answers.values()] == [200, 404, 401, 422, 405]
        for what, answer in answers.items():
            assert answer.headers.get("X-Content-Type-Options") == "nosniff", (what, dict(answer.headers))
            assert answer.headers.get("Cache-Control") == "no-store", (what, dict(answer.headers))
            assert "Strict-Transport-Security" not in answer.headers, what  # plain HTTP: not ours to say
        service.report(f"headers: {len(answers)} kinds of API answer (200, 404, 401, 422, 405) all nosniff + "
                       f"no-store")


# ---------------------------------------------------------------- item 8: robustness


def header_is_safe(value: str) -> None:
    assert value.isascii(), repr(value)
    assert not any(unicodedata.category(c).startswith("C") for c in value), repr(value)


def test_downloads_for_patients_whose_record_id_has_any_characters(service):
    with service.logs_on_failure():
        ids = {}
        for n, external_id in enumerate(ODD_IDS):
            # Another system upserts the patient through the API with the id as it has it.
            created = service.api("POST", "/api/v1/patients", {
                "external_id": external_id, "first_name": "Odd", "last_name": f"Record{n}",
                "phone": f"+1617555{n + 801:04d}", "timezone": "America/New_York"})
            assert created["external_id"] == external_id
            with service.engine.begin() as connection:
                ids[external_id] = connection.execute(
                    text("SELECT id FROM patients WHERE external_id = :e"), {"e": external_id}).scalar_one()
                connection.execute(text(  # an answered check-in
                    "INSERT INTO checkins (patient_id, status, kind, score, note, details, raw_text, prompted_at, "
                    "answered_at, created_at) VALUES (:p, 'answered', 'mood', 6, '', '', '6', :t, :t, :t)"),
                    {"p": ids[external_id], "t": utcnow()})
        staff = Browser(service, "127.0.4.40").signed_in_as(*NURSE[:2])
        served = 0
        for external_id, patient_id in ids.items():
            for path, kind, prefix in (("checkins.csv", "text/csv", "checkins-"),
                                       ("measures.csv", "text/csv", "questionnaires-"),
                                       ("report.pdf", "application/pdf", "measures-report-")):
                answer = staff.http.get(f"{service.web_url}/patients/{patient_id}/{path}", timeout=60)
                assert answer.status_code == 200, (external_id, path, answer.status_code)
                assert answer.headers["Content-Type"].startswith(kind)
                disposition = answer.headers["Content-Disposition"]
                header_is_safe(disposition)
                _kind, options = parse_options_header(disposition)
                name = options["filename"]
                assert name.startswith(prefix) and name.endswith(path.rpartition(".")[2]), disposition
                assert answer.headers["Cache-Control"] == "no-store"
                if path == "checkins.csv":
                    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8"), newline="")))
                    assert [(r["patient_external_id"], r["score"]) for r in rows] == [(external_id, "6")]
                elif path == "report.pdf":
                    assert answer.content.startswith(b"%PDF-")
                served += 1
        assert requests.get(service.web_url + "/healthz", timeout=30).status_code == 200
        service.report(f"downloads: {served} of {len(ids) * 3} served (checkins.csv, measures.csv, report.pdf for "
                       f"ids with accents, CJK, LF, U+2028, CRLF), headers ASCII without control characters")


def no_from_form(body: str) -> dict:
    form = {**SignedTwilio.sms_form(body), "AccountSid": ""}
    del form["From"]
    return form


def post_signed(service, form: dict) -> requests.Response:
    form = {**form, "AccountSid": service.twilio.account_sid}
    signature = RequestValidator(service.twilio.auth_token).compute_signature(
        service.env["PUBLIC_BASE_URL"] + "/twilio/sms", form)
    return requests.post(service.web_url + "/twilio/sms", data=form, timeout=30,
                         headers={"X-Twilio-Signature": signature})


NO_FROM_TEXTS = ("i want to end my life tonight", "my brother took all his pills and won't wake up")
PATIENT_PHONE = "+16175550951"
PATIENT_TEXT = "my chest is tight and my left arm is numb since the infusion"


def test_two_texts_with_no_sender_each_get_their_own_escalation(service):
    with service.logs_on_failure():
        texts_before = len(service.staff_texts())
        for body in NO_FROM_TEXTS:
            answer = post_signed(service, no_from_form(body))
            assert answer.status_code == 200 and "988" in answer.text and "911" in answer.text, answer.text
        wait_for(lambda: len(service.staff_texts()) - texts_before >= 2, CRISIS_WAIT,
                 "an on-call SMS for each text with no sender")
        open_now = service.api("GET", "/api/v1/escalations?status=open")["escalations"]
        mine = [e for e in open_now if e["text"] in NO_FROM_TEXTS]
        assert sorted(e["text"] for e in mine) == sorted(NO_FROM_TEXTS), open_now
        assert len({e["id"] for e in mine}) == 2 and all(not e["from"] for e in mine), mine
        # A known patient's own text, for the log check below: its alert goes through the worker too.
        service.api("POST", "/api/v1/patients", {"external_id": "log-1", "first_name": "Zelda", "last_name": "Quint",
                                                  "phone": PATIENT_PHONE, "email": "zelda.q@example.org",
                                                  "timezone": "America/New_York"})
        assert "911" in signed_text(service, PATIENT_TEXT, PATIENT_PHONE).text
        wait_for(lambda: len(service.staff_texts()) - texts_before >= 3, CRISIS_WAIT, "the patient's alert")
        service.acknowledge_open_escalations()
        service.report(f"no From: {len(NO_FROM_TEXTS)} texts, {len(mine)} escalations of their own, each paged")


# ---------------------------------------------------------------- item 7 again: behind the clinic's proxy


def restart_web_behind_a_proxy(service) -> None:
    """The same `reminders web` again, configured as it runs behind the clinic's HTTPS proxy."""
    service.web.stop()
    service.web = Process("web", service.web.argv, {**service.env, "TRUSTED_PROXY_HOPS": "1"},
                          service.web.log_path).start()

    def answers():
        if not service.web.running:
            raise AssertionError(f"the web process exited:\n{service.web.log()[-3000:]}")
        try:
            return requests.get(service.web_url + "/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for(answers, START_WAIT, "the web process behind the proxy to answer /healthz")


def test_behind_the_clinics_https_proxy_callers_are_told_apart_and_https_gets_hsts(service):
    """Every connection comes from the proxy: the sign-in delays must count the address the proxy
    names, or five anonymous guesses hold up every admin behind it; HTTPS is known only from it."""
    with service.logs_on_failure():
        restart_web_behind_a_proxy(service)
        email, password, _ = ADMIN
        statuses = [Browser(service, f"203.0.113.{n + 1}", via_proxy=True).sign_in(email, f"proxy-{n:08d}").status_code
                    for n in range(20)]
        one = Browser(service, "203.0.113.99", via_proxy=True)
        statuses += [one.sign_in(email, f"proxy-again-{n:08d}").status_code for n in range(10)]
        # Each address's own guess is heard (and counted against it alone), not held up by the others'.
        # (All from one address: waitress dropped X-Forwarded-For before the app's ProxyFix could read
        # it. `reminders web` must serve with reminders.web.server_options(settings).)
        assert statuses[:20] == [401] * 20, f"every caller held up as one behind the proxy: {statuses}"
        assert statuses[20] == 401 and set(statuses[21:]) == {429}, statuses
        started = time.monotonic()
        admin = Browser(service, "192.0.2.10", via_proxy=True)
        answer = admin.sign_in(email, password)
        took = time.monotonic() - started
        assert answer.status_code == 302, (answer.status_code, error_of(answer))

        https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.10"}
        bearer = {"Authorization": f"Bearer {service.token}"}
        for path, headers in (("/login", {}), ("/api/v1/patients/hdr-1", bearer), ("/healthz", {})):
            answer = requests.get(service.web_url + path, headers={**https, **headers}, timeout=30)
            hsts = answer.headers.get("Strict-Transport-Security", "")
            assert answer.status_code == 200 and re.match(r"max-age=(\d+)", hsts), (path, dict(answer.headers))
            assert int(re.match(r"max-age=(\d+)", hsts).group(1)) >= 180 * 86400
            plain = requests.get(service.web_url + path, timeout=30,
                                 headers={**headers, "X-Forwarded-Proto": "http", "X-Forwarded-For": "192.0.2.10"})
            assert "Strict-Transport-Security" not in plain.headers, path
        service.report(f"behind the proxy (TRUSTED_PROXY_HOPS=1): 30 wrong passwords for an admin from 21 addresses "
                       f"held up only the address that repeated; the admin signed in at once ({took:.1f} s); HSTS "
                       f"'{hsts}' over HTTPS, none over HTTP")


def test_the_logs_keep_task_ids_and_durations_and_hold_no_patient_phone_or_text(service):
    with service.logs_on_failure():
        # The reminder booked at the start went out through beat and the worker (send tasks), and the
        # alerts of the texts above: their lines are in the logs.
        booked = service.scenarios["logs"]
        wait_for(lambda: service.texts_to(booked.phones.values()), BEAT_WAIT, "the booked reminder to go out")
        success = re.compile(r"Task ([\w.]+)\[([^\]]*)\] succeeded in (\S+?)s:")
        sends = "|".join(re.escape(task) for task in SEND_TASKS)
        wait_for(lambda: re.search(rf"Task (?:{sends})\[[^\]]*\] succeeded in", service.worker.log()), CRISIS_WAIT,
                 "the send task's success line in the worker log")
        log = service.worker.log().splitlines()
        lines = [line for line in log if "succeeded in" in line]
        uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        for line in lines:
            found = success.search(line)
            assert found and uuid.fullmatch(found.group(2)), line
            assert re.fullmatch(r"\d+(?:\.\d+)?(?:e-\d+)?", found.group(3)), line
            assert "***" not in line, line
        received = [line for line in log if "] received" in line]
        assert received and all(uuid.search(line) for line in received), received[:3]
        # Nothing a patient sent, and no patient's number or address, in any of the three logs.
        phones = [PATIENT_PHONE, "+16175550901", *booked.phones.values(),
                  *(f"+1617555{n + 801:04d}" for n in range(len(ODD_IDS)))]
        secrets = [PATIENT_TEXT, *NO_FROM_TEXTS, *phones, *(p[2:] for p in phones), "zelda.q@example.org", "Zelda",
                   "Quint"]
        for process in (service.web, service.worker, service.beat):
            leaked = [s for s in secrets if s in process.log()]
            assert not leaked, (process.name, leaked)
        sent = [line for line in lines if re.search(sends, line)]
        service.report(f"logs: {len(lines)} task success lines ({len(sent)} of send tasks) with whole ids and "
                       f"durations, e.g. '{success.search(sent[-1]).group(0)}'; no patient phone, name or text in "
                       f"web, worker or beat logs")
