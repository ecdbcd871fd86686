"""The check-in page of a patient with no text channel: PUBLIC_BASE_URL/c/<token>, no login.

GET  /c/<token>        the check-in: mood (or pain) 0-10, side effects to tick, a box for words
POST /c/<token>        the answer, handled as the same words by text (reminders.inbound.checkin_links)
GET  /c/<token>/done   thank you, with the answer a text would have had (988/911 after a crisis)

The questionnaire pages' look, headers, rate limits and refusals (reminders.web.questionnaire_pages):
the token in the URL is the key, so the page shows only the first name and the clinic. A link is
answered once; a second submit shows the thank-you again.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from reminders.escalations import CRISIS_CLASSIFICATIONS
from reminders.inbound import checkin_links
from reminders.inbound.replies import OPEN_CHECKIN
from reminders.models import CheckIn, CheckInLink, InboundMessage, OutboxMessage, Patient
from reminders.web import questionnaire_pages as pages
from reminders.web.context import db, request_now, send_alerts_now, settings
from reminders.web.questionnaire_words import PageWords
from reminders.web.rate_limits import Limit

log = logging.getLogger(__name__)

checkin_pages = Blueprint("checkin_pages", __name__, url_prefix="/c")

# One check-in is a page and a tap: 30 a minute per link leaves room for reloads.
PER_TOKEN = Limit("c-token", 30, 60)

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "How are you?",
        "hello": "Hello {name}",
        "mood": "How is your mood today, from 0 (worst) to 10 (best)?",
        "hurt": "How much does it hurt today, from 0 (not at all) to 10 (worst)?",
        "mood_week": "How has your mood been this week, from 0 (worst) to 10 (best)?",
        "hurt_week": "How much has it hurt this week, from 0 (not at all) to 10 (worst)?",
        "low_mood": "worst", "high_mood": "best", "low_hurt": "not at all", "high_hurt": "worst",
        "effects": "Any side effects? Tick all that apply.",
        "floaty_or_blurry": "Floaty or blurry vision", "nausea": "Nausea", "vomiting": "Vomiting",
        "dizziness": "Dizziness", "headache": "Headache", "high_blood_pressure": "High blood pressure",
        "words": "Anything else you want us to know? (optional)",
        "send": "Send",
        "bad_answer": "Please choose a number from 0 to 10.",
        "not_watched": "This page is not watched around the clock.",
        "thanks_title": "Thank you, {name}",
        "thanks_body": "Your answer has been sent to your care team at {clinic}. You can close this page.",
        "low": "We're sorry today is so hard. If you'd like to talk, call us on {phone}.",
    },
    "es": {
        "title": "¿Cómo está?",
        "hello": "Hola {name}",
        "mood": "Del 0 (muy mal) al 10 (muy bien), ¿qué tal se siente hoy?",
        "hurt": "Del 0 (nada) al 10 (el peor), ¿qué tanto le duele hoy?",
        "mood_week": "Del 0 (peor) al 10 (mejor), ¿qué tal se ha sentido esta semana?",
        "hurt_week": "Del 0 (nada) al 10 (lo peor), ¿qué tanto le ha dolido esta semana?",
        "low_mood": "muy mal", "high_mood": "muy bien", "low_hurt": "nada", "high_hurt": "el peor",
        "effects": "¿Ha tenido algún efecto? Marque todos los que correspondan.",
        "floaty_or_blurry": "Se siente como flotando o ve borroso", "nausea": "Náuseas", "vomiting": "Vómitos",
        "dizziness": "Mareo", "headache": "Dolor de cabeza", "high_blood_pressure": "Presión alta",
        "words": "¿Hay algo más que quiera contarnos? (opcional)",
        "send": "Enviar",
        "bad_answer": "Por favor elija un número del 0 al 10.",
        "not_watched": "Nadie vigila esta página a toda hora.",
        "thanks_title": "Gracias, {name}",
        "thanks_body": "Su respuesta se envió a su equipo de atención en {clinic}. Ya puede cerrar esta página.",
        "low": "Sentimos que hoy sea un día tan difícil. Si quiere hablar, llámenos al {phone}.",
    },
}


class CheckinWords:
    """`ask("mood")` in a template: one word of the check-in page, in the patient's language."""

    def __init__(self, language: str | None):
        self.language = PageWords(language).language
        self._words = WORDS.get(self.language, WORDS["en"])

    def __call__(self, key: str, **values) -> str:
        return self._words[key].format(**values)


def register(app: Flask) -> None:
    """The blueprint, and the questionnaire pages' headers on every /c/ response (errors too). The
    caller exempts it from CSRFProtect, as the questionnaire pages (see their register)."""
    app.register_blueprint(checkin_pages)

    @app.after_request
    def _page_headers(response: Response) -> Response:
        if request.path.startswith("/c/") or request.path == "/c":
            for name, value in pages.HEADERS.items():
                response.headers[name] = value
        return response


# ---------------------------------------------------------------- the pages

@checkin_pages.get("/<token>")
def form(token: str):
    link, checkin, refused = _open(token)
    if refused:
        return refused
    if _answered(link, checkin):
        return redirect(url_for(".thanks", token=token), 303)
    return _form_page(link, checkin)


@checkin_pages.post("/<token>")
def answer(token: str):
    link, checkin, refused = _open(token)
    if refused:
        return refused
    if pages._foreign_origin():  # noqa: SLF001 - the questionnaire pages' own check
        log.warning("check-in answer refused: posted from another site")
        return pages.refusal(link.language, "forbidden", 403)
    # Two taps racing: on PostgreSQL the link is locked until the first answer is committed.
    db().refresh(link, with_for_update=True)
    if _answered(link, checkin):  # a second submit: the first answer stands
        return redirect(url_for(".thanks", token=token), 303)
    given = _read_form()
    if given is None:
        return _form_page(link, checkin, error=True), 400
    try:
        answered = checkin_links.take_answer(db(), settings(), link, checkin, given, request_now())
        db().commit()
    except IntegrityError:  # the same link answered by a concurrent request first
        db().rollback()
        return redirect(url_for(".thanks", token=token), 303)
    if answered.alert_ids:
        send_alerts_now(answered.alert_ids, request_now(), "check-in page alerts")
    return redirect(url_for(".thanks", token=token), 303)


@checkin_pages.get("/<token>/done")
def thanks(token: str):
    link, checkin, refused = _open(token, expired_ok=True)
    if refused:
        return refused
    if not _answered(link, checkin):
        return redirect(url_for(".form", token=token), 303)
    said = db().get(InboundMessage, checkin.inbound_message_id) if checkin.inbound_message_id else None
    crisis = said is not None and said.classification in (*CRISIS_CLASSIFICATIONS, "question")
    low = checkin.kind != "pain" and checkin.score is not None and checkin.score <= settings().crisis_score_max + 1
    return _page("checkin/done.html", link, reply=said.reply_body if said is not None else None, safety=crisis,
                 low=low, phone=settings().clinic_phone)


# ---------------------------------------------------------------- finding the check-in

def _open(token: str, expired_ok: bool = False):
    """The link and its check-in, or the refusal to answer with (404, 410, 429)."""
    address = request.remote_addr or "unknown"
    wait = pages.limiter().waiting(pages.UNKNOWN_PER_IP, address)
    if wait:
        return None, None, pages.too_many(None, wait)
    link = checkin_links.find_by_token(db(), token)
    checkin = checkin_links.checkin_of(db(), link) if link is not None else None
    if checkin is None:
        wait = pages.limiter().hit(pages.UNKNOWN_PER_IP, address)
        log.info("check-in link not found (%s)", "now limited" if wait else "counted")
        return None, None, pages.too_many(None, wait) if wait else pages.refusal(None, "not_found", 404)
    wait = pages.limiter().hit(PER_TOKEN, token)
    if wait:
        return None, None, pages.too_many(link.language, wait)
    # The thank-you stays for the answered; an unanswered link past its time is refused.
    if checkin_links.is_expired(link, request_now()) and not (expired_ok and _answered(link, checkin)):
        return None, None, pages.refusal(link.language, "expired", 410)
    return link, checkin, None


def _answered(link: CheckInLink, checkin: CheckIn) -> bool:
    """Answered on the page, or by a text before it (its words are with the check-in already)."""
    return link.answered_at is not None or checkin.status not in OPEN_CHECKIN


def _read_form() -> checkin_links.PageAnswer | None:
    text = (request.form.get("score") or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 2 and 0 <= int(text) <= 10):
        return None
    effects = tuple(e for e in checkin_links.SIDE_EFFECTS if e in request.form.getlist("effect"))
    words = (request.form.get("words") or "")[: checkin_links.FREE_TEXT_LIMIT]
    return checkin_links.PageAnswer(int(text), effects, words)


# ---------------------------------------------------------------- rendering

def _form_page(link: CheckInLink, checkin: CheckIn, error: bool = False) -> str:
    asks = checkin_links.asks(db(), checkin)
    row = db().get(OutboxMessage, link.outbox_id)
    weekly = row is not None and row.rule.startswith("checkin_weekly")
    return _page("checkin/form.html", link, asks=asks, question=f"{asks}_week" if weekly else asks, error=error,
                 effects=checkin_links.SIDE_EFFECTS, chosen=request.form.get("score") if error else None)


def _page(template: str, link: CheckInLink, **context) -> str:
    s = settings()
    patient = db().get(Patient, link.patient_id)
    say = PageWords(link.language)
    return render_template(template, link=link, say=say, ask=CheckinWords(link.language), lang=say.language,
                           first_name=patient.first_name if patient else "", clinic=s.clinic_name,
                           crisis=s.crisis_line, emergency=s.emergency_number, **context)


def not_found_page():
    """The app's 404 for any other /c/... address: no detail."""
    return pages.refusal(None, "not_found", 404)
