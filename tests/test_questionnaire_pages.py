"""The patient's questionnaire pages (/q/<token>) through the Flask test client: the link from the
sent text, one question per screen, answers stored and scored, a self-harm answer escalated with
the 988/911 panel shown, refusals (unknown, expired, reused, bad input), Spanish, rate limits."""
from __future__ import annotations

import html as html_text
import re
import threading
import time

import pytest
from sqlalchemy import select, text

from reminders.models.outbox import Kind
from reminders.models import Escalation, OutboxMessage, Patient, Questionnaire
from reminders.pipeline import run_pass
from reminders.web import create_app
from tests.conftest import at, both_databases
from tests.fixtures.twoway import STAFF_EMAILS, STAFF_PHONES, escalations
from tests.helpers import book

VISIT = "2026-12-10T10:00:00-05:00"
LINK_SENT = "2026-12-08T10:00:00-05:00"  # 48 h before the visit
PHQ9 = [3, 3, 2, 2, 2, 2, 1, 1, 0]  # 16: moderately severe
settings = both_databases()
PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}


class FakeTime:
    """The rate limiter's clock (seconds), moved by the test."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def measured(configure, two_way):
    return configure(MEASURES_ENABLED="true")


@pytest.fixture
def limiter_time():
    return FakeTime()


@pytest.fixture
def web(measured, clock, limiter_time):  # noqa: F811 - the two-way app with measures on
    return create_app(measured, {"TESTING": True, "CLOCK": clock, "RATE_LIMIT_CLOCK": limiter_time})


@pytest.fixture
def browser_client(web):
    return web.test_client()


def send_link(measured, session, fake_twilio, *, condition: str | None = None, language: str = "en",
              patient: str = "p1", appointment: str = "a1", phone_number: str = "+12025550143") -> str:
    """Book Maya's first infusion, run the pass that texts her the link; the token from the text."""
    visit = book(session, starts_at=VISIT, patient=patient, appointment=appointment, phone=phone_number)
    visit.course.condition = condition
    visit.patient.language = language
    session.commit()
    run_pass(measured, at(LINK_SENT))
    [text] = [m["body"] for m in fake_twilio.messages if m["to"] == phone_number and "/q/" in m["body"]]
    return re.search(r"/q/([A-Za-z0-9_-]+)", text).group(1)


@pytest.fixture
def token(measured, session, fake_twilio) -> str:
    return send_link(measured, session, fake_twilio)


def page_text(response) -> str:
    """What a person reads: the page without its tags, spaces collapsed."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(style|head)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(html_text.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def answer(client, token: str, item: int, value, **headers):
    return client.post(f"/q/{token}/{item}", data={"answer": str(value)}, headers=headers)


def answer_all(client, token: str, values, first: int = 1, progress: str = "Question {} of",
               difficulty: int | None = 1):
    """Tap through, following each redirect as the browser does; the last page. After the PHQ-9's
    items its unscored difficulty question comes when a problem was checked off: answered with
    `difficulty` (None: the page that asks it is returned)."""
    response = client.get(f"/q/{token}/{first}")
    for item, value in enumerate(values, start=first):
        assert progress.format(item) in page_text(response)
        response = answer(client, token, item, value)
        assert response.status_code == 303, page_text(response)
        location = response.headers["Location"]
        response = client.get(location)
        if location.endswith("/extra") and difficulty is not None:
            response = client.post(location, data={"answer": str(difficulty)})
            assert response.status_code == 303, page_text(response)
            response = client.get(response.headers["Location"])
    return response


def stored(session, token: str) -> Questionnaire:
    session.expire_all()
    return session.scalar(select(Questionnaire).where(Questionnaire.token == token))


def staff_texts(fake_twilio) -> list[str]:
    return [m["body"] for m in fake_twilio.messages if m["to"] in STAFF_PHONES]


def staff_mails(smtp_server) -> list:
    return [m for m in smtp_server.messages if set(m.rcpt_tos) & set(STAFF_EMAILS)]


# ---------------------------------------------------------------- a whole questionnaire

def test_a_full_phq9_from_the_texted_link_is_stored_and_scored(browser_client, token, session):
    intro = browser_client.get(f"/q/{token}")
    words = page_text(intro)
    assert intro.status_code == 200
    assert "Hello Maya" in words and "The Infusion Clinic" in words and "Lopez" not in words
    assert "9 short questions, about 2 minutes" in words
    assert "Your answers go to your care team at The Infusion Clinic" in words
    assert "call or text 988 now. In an emergency, call 911" in words
    assert f'href="/q/{token}/1"' in intro.get_data(as_text=True)

    first = browser_client.get(f"/q/{token}/1")
    html, words = first.get_data(as_text=True), page_text(first)
    assert "Question 1 of 9" in words and "Part" not in words  # one questionnaire for this visit
    assert "Over the last 2 weeks, how often have you been bothered" in words
    assert "Little interest or pleasure in doing things" in words
    assert re.findall(r'<button type="submit" name="answer" value="(\d)"', html) == ["0", "1", "2", "3"]
    assert "<fieldset" in html and "<legend>" in html and '<html lang="en">' in html
    assert "<script" not in html and "Back to the previous question" not in words

    done = answer_all(browser_client, token, PHQ9)
    assert "Thank you, Maya" in page_text(done)
    assert "Your answers have been sent to your care team" in page_text(done)
    assert "Please reach out now" not in page_text(done)
    q = stored(session, token)
    assert (q.status, q.score, q.band, q.safety_raised) == ("completed", 16, "moderately_severe", False)
    assert q.answered() == dict(enumerate(PHQ9, start=1))
    assert escalations(session) == []


def test_every_page_is_sent_with_no_referrer_no_store_noindex_and_a_script_free_policy(browser_client, token):
    responses = [browser_client.get(f"/q/{token}"), browser_client.get(f"/q/{token}/1"),
                 answer(browser_client, token, 1, 0), answer(browser_client, token, 2, "x"),
                 browser_client.get("/q/not-a-token"), browser_client.get(f"/q/{token}/1/extra")]
    assert [r.status_code for r in responses] == [200, 200, 303, 400, 404, 404]
    for response in responses:
        for name, value in PAGE_HEADERS.items():
            assert response.headers[name] == value, (response.request.path, name)
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "style-src 'self'" in policy and "script-src" not in policy
    css = browser_client.get("/static/questionnaire.css")
    assert css.status_code == 200 and b"min-height: 3.5rem" in css.data


def test_back_changes_the_previous_answer_and_goes_on_to_the_next_question(browser_client, token, session):
    answer(browser_client, token, 1, 2)
    third = browser_client.get(answer(browser_client, token, 2, 1).headers["Location"])
    assert "Question 3 of 9" in page_text(third)
    assert f'href="/q/{token}/2"' in third.get_data(as_text=True)
    second = browser_client.get(f"/q/{token}/2")
    assert "Question 2 of 9" in page_text(second) and "Several days (your answer)" in page_text(second)
    moved_on = answer(browser_client, token, 2, 3)
    assert moved_on.headers["Location"].endswith(f"/q/{token}/3")
    assert stored(session, token).answered() == {1: 2, 2: 3}
    # Further than the first unanswered question is not reachable: back to the current one.
    assert browser_client.get(f"/q/{token}/7").headers["Location"].endswith(f"/q/{token}/3")
    # Opening the link again goes straight to where the patient left off.
    assert browser_client.get(f"/q/{token}").headers["Location"].endswith(f"/q/{token}/3")


def test_two_taps_racing_on_postgresql_keep_both_answers(browser_client, token, measured, sessions, session):
    if not measured.effective_database_url.startswith("postgresql"):
        pytest.skip("row locks are PostgreSQL's; SQLite writes one at a time anyway")
    answer(browser_client, token, 1, 0)
    other_tap = sessions()  # holds the row as a racing request would, mid-answer
    held = other_tap.scalar(select(Questionnaire).where(Questionnaire.token == token).with_for_update())
    outcome = {}
    racing = threading.Thread(target=lambda: outcome.update(response=answer(browser_client, token, 2, 3)))
    racing.start()
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' " \
              "AND query ILIKE '%questionnaires%'"
    try:
        deadline = time.monotonic() + 30
        while not session.execute(text(waiting)).scalar():
            assert time.monotonic() < deadline, "the page's answer never waited for the row"
            session.rollback()
            threading.Event().wait(0.05)
        held.answers = {"1": 2}  # the other tap changes answer 1 while this one waits
        other_tap.commit()
    finally:
        other_tap.close()
        racing.join(30)
    assert outcome["response"].status_code == 303
    assert stored(session, token).answered() == {1: 2, 2: 3}


# ---------------------------------------------------------------- item 9

def test_item_9_answered_1_escalates_alerts_on_call_and_shows_988_and_911(
        browser_client, measured, session, fake_twilio, smtp_server):
    token = send_link(measured, session, fake_twilio, condition="depression")
    after_item_9 = answer_all(browser_client, token, [0] * 8 + [1])
    words = page_text(after_item_9)
    assert "Please reach out now" in words
    assert "call or text 988 (the Suicide & Crisis Lifeline, free and open day and night) now" in words
    assert "If you are in danger, call 911." in words
    assert "Your care team has been told about your answer and will contact you." in words
    html = after_item_9.get_data(as_text=True)
    assert 'href="tel:988"' in html and 'href="sms:988"' in html and 'href="tel:911"' in html
    assert "One more short set: 7 questions" in words

    [escalation] = escalations(session)
    q = stored(session, token)
    assert (escalation.reason, escalation.questionnaire_id, q.escalation_id) == ("self_harm_answer", q.id, escalation.id)
    assert '"Several days" (1)' in escalation.text
    alerts = list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == Kind.ALERT)))
    assert sorted(row.to_address for row in alerts) == sorted([*STAFF_PHONES, *STAFF_EMAILS])
    assert {row.status for row in alerts} == {"sent"}  # sent by the app's dispatcher, not left for a pass
    assert len(staff_texts(fake_twilio)) == 2 and len(staff_mails(smtp_server)) == 2
    assert all("Several days" not in text for text in staff_texts(fake_twilio))  # nothing private on a lock screen

    # The GAD-7 from the "one more" button: the panel stays on its screens and its thank-you page.
    gad7 = re.search(r'href="(/q/[^"]+)"[^>]*>One more', after_item_9.get_data(as_text=True)).group(1)
    first = browser_client.get(browser_client.get(gad7).headers["Location"])
    assert "Question 1 of 7 · Part 2 of 2" in page_text(first) and "Please reach out now" in page_text(first)
    gad_token = gad7.rsplit("/", 1)[1]
    last = answer_all(browser_client, gad_token, [1] * 7)
    assert "Thank you, Maya" in page_text(last) and "Please reach out now" in page_text(last)
    assert "One more" not in page_text(last)
    assert stored(session, gad_token).score == 7
    assert len(escalations(session)) == 1


def test_a_questionnaire_abandoned_right_after_item_9_has_already_escalated(
        browser_client, measured, session, fake_twilio, smtp_server):
    token = send_link(measured, session, fake_twilio, condition="depression")
    browser_client.get(f"/q/{token}/1")
    for item in range(1, 9):
        answer(browser_client, token, item, 0)
    answered = answer(browser_client, token, 9, 2)  # and the phone is put away: no next page asked for
    assert answered.status_code == 303
    [escalation] = escalations(session)
    assert '"More than half the days" (2)' in escalation.text
    assert len(staff_texts(fake_twilio)) == 2 and len(staff_mails(smtp_server)) == 2
    others = session.scalars(select(Questionnaire).where(Questionnaire.token != token)).all()
    assert [(q.scale, q.status) for q in others] == [("gad7", "sent")]


def test_item_9_answered_0_does_not_escalate(browser_client, token, session, fake_twilio):
    answer_all(browser_client, token, [1] * 8 + [0])
    assert escalations(session) == [] and staff_texts(fake_twilio) == []


# ---------------------------------------------------------------- refusals

def test_an_unknown_token_is_a_plain_404(browser_client, token):
    response = browser_client.get("/q/AAAAAAAAAAAAAAAAAAAAAA")
    words = page_text(response)
    assert response.status_code == 404 and "Page not found" in words
    assert "Maya" not in words and "Question" not in words
    assert browser_client.post("/q/AAAAAAAAAAAAAAAAAAAAAA/1", data={"answer": "0"}).status_code == 404
    assert browser_client.get("/q/" + "x" * 300).status_code == 404


def test_an_expired_link_is_refused_with_the_clinic_phone(browser_client, token, clock, session):
    clock.now = stored(session, token).expires_at
    for response in (browser_client.get(f"/q/{token}"), browser_client.get(f"/q/{token}/1"),
                     answer(browser_client, token, 1, 0)):
        assert response.status_code == 410
        assert "This link has expired. Please call the clinic at +1 555 010 0100." in page_text(response)
        assert "Question" not in page_text(response)
    assert stored(session, token).answers == {}


def test_a_completed_questionnaire_link_is_refused_as_already_answered(browser_client, token, clock, session):
    answer_all(browser_client, token, PHQ9)
    again = browser_client.get(f"/q/{token}")
    assert again.status_code == 410 and "These questions are already answered, thank you." in page_text(again)
    assert again.headers["Referrer-Policy"] == "no-referrer" and again.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert browser_client.get(f"/q/{token}/3").status_code == 410
    # A second tap on the last answer lands on the thank-you page; the answer is not changed.
    assert answer(browser_client, token, 9, 3).headers["Location"].endswith(f"/q/{token}/done")
    assert stored(session, token).answer_of(9) == 0
    clock.advance(hours=2)
    later = browser_client.get(f"/q/{token}/done")
    assert later.status_code == 410 and "already answered" in page_text(later)
    assert answer(browser_client, token, 9, 3).status_code == 410


@pytest.mark.parametrize("item, value, asked", [
    (1, "abc", 1), (1, "7", 1), (1, "-1", 1), (1, "", 1), (1, "1.5", 1), (1, "٣", 1),
    (42, "0", 2), (5, "0", 2),
])
def test_a_bad_answer_asks_again_and_keeps_what_was_stored(browser_client, token, session, item, value, asked):
    answer(browser_client, token, 1, 2)  # question 2 is the current one; 1 may be changed
    before = stored(session, token).answered()
    response = answer(browser_client, token, item, value)
    words = page_text(response)
    assert response.status_code == 400
    assert "That answer could not be saved. Please choose one of the answers below." in words
    assert f"Question {asked} of 9" in words and "<button" in response.get_data(as_text=True)
    assert stored(session, token).answered() == before


def test_an_answer_posted_from_another_site_is_refused(browser_client, token, session):
    refused = answer(browser_client, token, 1, 3, Origin="https://evil.example.net")
    assert refused.status_code == 403 and stored(session, token).answers == {}
    # Our own page posts with its own origin, or "null" under Referrer-Policy: no-referrer.
    assert answer(browser_client, token, 1, 3, Origin="https://clinic.example.org").status_code == 303
    assert answer(browser_client, token, 2, 3, Origin="null").status_code == 303
    assert stored(session, token).answered() == {1: 3, 2: 3}


# ---------------------------------------------------------------- Spanish

def test_a_spanish_patient_reads_every_page_word_in_spanish(browser_client, measured, session, fake_twilio):
    token = send_link(measured, session, fake_twilio, language="es")
    intro = browser_client.get(f"/q/{token}")
    words = page_text(intro)
    assert '<html lang="es">' in intro.get_data(as_text=True)
    assert "Hola Maya" in words and "9 preguntas breves" in words and "Empezar" in words
    assert "llame o envíe un mensaje de texto al 988" in words
    first = browser_client.get(f"/q/{token}/1")
    words = page_text(first)
    assert "Pregunta 1 de 9" in words and "Poco interés o placer en hacer cosas" in words
    assert "Ningún día" in words and "Durante las últimas 2 semanas" in words
    assert not re.search(r"\b(Question|Back|Several days|Not at all)\b", words)
    bad = answer(browser_client, token, 1, "x")
    assert "No se pudo guardar esa respuesta" in page_text(bad)
    done = answer_all(browser_client, token, [0] * 8 + [1], progress="Pregunta {} de")
    words = page_text(done)
    assert "Gracias, Maya" in words and "Por favor, busque ayuda ahora" in words
    assert "Si está en peligro, llame al 911." in words and "oprima 2 para español" in words
    assert "Su equipo de atención ya sabe de su respuesta" in words
    assert not re.search(r"\b(Thank you|Please|care team)\b", words)


def test_a_spanish_expired_link_is_refused_in_spanish(browser_client, measured, session, fake_twilio, clock):
    token = send_link(measured, session, fake_twilio, language="es")
    clock.advance(days=8)
    response = browser_client.get(f"/q/{token}")
    assert response.status_code == 410
    assert "Este enlace ha vencido. Por favor, llame a la clínica al +1 555 010 0100." in page_text(response)


# ---------------------------------------------------------------- rate limits

def test_one_link_answers_60_requests_a_minute_then_429_with_retry_after(browser_client, token, limiter_time):
    limiter_time.now = 1_800_000_040.0  # 40 s into a minute's window
    assert all(browser_client.get(f"/q/{token}").status_code == 200 for _ in range(60))
    limited = browser_client.get(f"/q/{token}/1")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "20"
    assert "Too many requests. Please try again in 20 seconds." in page_text(limited)
    assert limited.headers["Cache-Control"] == "no-store"
    limiter_time.now += 20
    assert browser_client.get(f"/q/{token}").status_code == 200


def test_guessing_tokens_from_one_address_is_stopped_after_20_in_10_minutes(browser_client, token, limiter_time):
    limiter_time.now = 1_800_000_000.0  # the start of a 10-minute window
    guesses = [browser_client.get(f"/q/guess{n:04d}").status_code for n in range(21)]
    assert guesses == [404] * 20 + [429]
    # The guesser is stopped from reaching a real link too; a patient on another address is not.
    assert browser_client.get(f"/q/{token}").status_code == 429
    other = browser_client.get(f"/q/{token}", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert other.status_code == 200
    limiter_time.now += 600
    assert browser_client.get(f"/q/{token}").status_code == 200


def test_behind_a_trusted_proxy_a_guesser_is_told_apart_from_patients(configure, measured, clock, limiter_time,
                                                                     token):
    proxied = create_app(configure(TRUSTED_PROXY_HOPS="1"),
                         {"TESTING": True, "CLOCK": clock, "RATE_LIMIT_CLOCK": limiter_time}).test_client()
    limiter_time.now = 1_800_000_000.0
    via_proxy = {"REMOTE_ADDR": "10.0.0.2"}  # every request reaches the app from the proxy
    guesser = {"X-Forwarded-For": "203.0.113.9"}
    guesses = [proxied.get(f"/q/guess{n:04d}", headers=guesser, environ_base=via_proxy).status_code
               for n in range(21)]
    assert guesses[-1] == 429
    patient = proxied.get(f"/q/{token}", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base=via_proxy)
    assert patient.status_code == 200


def test_answers_saved_before_a_rate_limit_stay_saved(browser_client, token, session, limiter_time):
    answer(browser_client, token, 1, 1)
    for _ in range(59):
        browser_client.get(f"/q/{token}")
    assert answer(browser_client, token, 2, 1).status_code == 429
    assert stored(session, token).answered() == {1: 1}


def test_patient_record_is_never_on_the_page(browser_client, measured, session, fake_twilio):
    token = send_link(measured, session, fake_twilio)
    book(session, starts_at=VISIT, patient="p2", appointment="a2", phone="+12025550199", first_name="Other")
    page = page_text(browser_client.get(f"/q/{token}"))
    patient = session.scalar(select(Patient).where(Patient.external_id == "p1"))
    assert patient.phone not in page and patient.last_name not in page and "Other" not in page
    assert session.scalar(select(Escalation)) is None


def test_a_clinic_with_its_own_crisis_line_shows_that_number(configure, measured, session, fake_twilio, clock):
    local = configure(CRISIS_LINE="1-800-273-8255", EMERGENCY_NUMBER="112")
    client = create_app(local, {"TESTING": True, "CLOCK": clock}).test_client()
    token = send_link(local, session, fake_twilio)
    done = answer_all(client, token, [0] * 8 + [3])
    words = page_text(done)
    assert "call or text 1-800-273-8255 now" in words and "If you are in danger, call 112." in words
    assert "Lifeline" not in words and "988" not in words
    assert 'href="tel:1-800-273-8255"' in done.get_data(as_text=True)
