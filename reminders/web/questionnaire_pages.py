"""The patient's questionnaire pages: PUBLIC_BASE_URL/q/<token>, no login.

GET  /q/<token>            the intro the first time (how many questions, minutes, 988/911), then
                           the current question
GET  /q/<token>/<item>     one question: the current one, or one already answered (to change it)
POST /q/<token>/<item>     the answer (a button `answer=<value>`), stored at once, then a redirect
GET  /q/<token>/extra      after the last item, the scale's unscored question (the PHQ-9's "how
POST /q/<token>/extra      difficult have these problems made it..."), when a problem was checked off;
                           the questionnaire is already scored, the answer is stored beside it
GET  /q/<token>/done       thank you, the crisis panel after a self-harm answer, "one more" set

The token in the URL is the patient's key, so the pages show only the first name and the clinic.
No JavaScript and no cookies: every step is a link or a one-tap form, and the state is the
stored answers.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, url_for

from reminders import scales as catalogue
from reminders.measures.questionnaires import (AnswerRefused, find_by_token, is_expired, items_left,
                                               next_of_occasion, pending, record_answer, record_extra, visit_set,
                                               wants_extra, workload)
from reminders.models import Patient, Questionnaire
from reminders.models.measures import COMPLETED, SENT
from reminders.web.context import db, request_now, send_alerts_now, settings
from reminders.web.questionnaire_words import PageWords
from reminders.web.rate_limits import Limit, Limiter

log = logging.getLogger(__name__)

questionnaire_pages = Blueprint("questionnaire_pages", __name__, url_prefix="/q")

# A patient tapping through a PHQ-9 and a GAD-7 makes about 35 requests; 60 a minute per link
# leaves room for going back and forth, and stops a script hammering one link.
PER_TOKEN = Limit("q-token", 60, 60)
# Tokens are 128 random bits: someone looking up many that do not exist is guessing.
UNKNOWN_PER_IP = Limit("q-unknown-ip", 20, 600)
# The thank-you page (with the crisis panel) stays for a while after the last answer; later the
# link is refused as already answered.
THANKS_FOR = timedelta(hours=1)

HEADERS = {
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


def register(app: Flask, settings_) -> None:
    """The blueprint, its rate limiter and the headers every /q/ response carries (errors too).

    The caller exempts the blueprint from CSRFProtect: there is no login cookie to ride on, the
    unguessable token in the URL is the credential, and a form token would need a session cookie
    the patient's browser may not keep. The Origin header is checked when present instead."""
    app.register_blueprint(questionnaire_pages)
    clock = app.config.get("RATE_LIMIT_CLOCK") or time.time
    app.extensions["reminders.page_limiter"] = Limiter(settings_.redis_url, clock=clock)

    @app.after_request
    def _page_headers(response: Response) -> Response:
        if request.path.startswith("/q/") or request.path == "/q":
            for name, value in HEADERS.items():
                response.headers[name] = value
        return response


def limiter() -> Limiter:
    return current_app.extensions["reminders.page_limiter"]


# ---------------------------------------------------------------- the pages

@questionnaire_pages.get("/<token>")
def opening(token: str):
    q, refused = _open(token)
    if refused:
        return refused
    if q.status == COMPLETED:
        return _reused(q)
    visit = visit_set(db(), q)
    if all(each.status == SENT for each in visit):
        questions, minutes = workload(pending(visit, request_now()))
        return _page("questionnaire/intro.html", q, visit, questions=questions, minutes=minutes,
                     first_item=items_left(q)[0])
    return redirect(url_for(".question", token=token, item=items_left(q)[0]), 303)


@questionnaire_pages.get("/<token>/<int:item>")
def question(token: str, item: int):
    q, refused = _open(token)
    if refused:
        return refused
    if q.status == COMPLETED:
        return _reused(q)
    current = items_left(q)[0]
    if item != current and q.answer_of(item) is None:
        return redirect(url_for(".question", token=token, item=current), 303)
    return _question_page(q, item)


@questionnaire_pages.post("/<token>/<int:item>")
def answer(token: str, item: int):
    q, refused = _open(token)
    if refused:
        return refused
    if _foreign_origin():
        log.warning("questionnaire answer refused: posted from another site")
        return refusal(q.language, "forbidden", 403)
    # Two taps racing (two tabs, a double tap) each read the answers and write them back: on
    # PostgreSQL the row is locked until this answer is committed, so neither is lost.
    db().refresh(q, with_for_update=True)
    if q.status == COMPLETED:  # a second tap on the last answer
        return _to_thanks(q) if _thanks_still_shown(q) else _reused(q)
    current = items_left(q)[0]
    askable = item == current or q.answer_of(item) is not None
    if item not in catalogue.get_scale(q.scale).numbers or not askable:
        return _question_page(q, current, error=True), 400
    recorded = _record(q, item, _whole(request.form.get("answer")))
    if recorded is None:
        return _question_page(q, item, error=True), 400
    db().commit()
    if recorded.alert_ids:
        send_alerts_now(recorded.alert_ids, request_now(), "questionnaire alerts")
    if recorded.next_item is None:
        return _to_extra(q) if wants_extra(q) else _to_thanks(q)
    return redirect(url_for(".question", token=token, item=recorded.next_item), 303)


@questionnaire_pages.get("/<token>/extra")
def extra(token: str):
    q, refused = _open(token)
    if refused:
        return refused
    if q.status != COMPLETED:
        return redirect(url_for(".question", token=token, item=items_left(q)[0]), 303)
    if not _thanks_still_shown(q):
        return _reused(q)
    if not wants_extra(q):
        return _to_thanks(q)
    return _extra_page(q)


@questionnaire_pages.post("/<token>/extra")
def extra_answer(token: str):
    q, refused = _open(token)
    if refused:
        return refused
    if _foreign_origin():
        log.warning("questionnaire answer refused: posted from another site")
        return refusal(q.language, "forbidden", 403)
    db().refresh(q, with_for_update=True)
    if q.status != COMPLETED:
        return redirect(url_for(".question", token=token, item=items_left(q)[0]), 303)
    if not _thanks_still_shown(q):
        return _reused(q)
    if not wants_extra(q):  # a second tap: the first one was kept
        return _to_thanks(q)
    value = _whole(request.form.get("answer"))
    try:
        if value is None:
            raise AnswerRefused("no answer")
        record_extra(q, value)
    except AnswerRefused:
        db().rollback()
        return _extra_page(q, error=True), 400
    db().commit()
    return _to_thanks(q)


@questionnaire_pages.get("/<token>/done")
def thanks(token: str):
    q, refused = _open(token)
    if refused:
        return refused
    if q.status != COMPLETED:
        return redirect(url_for(".question", token=token, item=items_left(q)[0]), 303)
    if not _thanks_still_shown(q):
        return _reused(q)
    following = next_of_occasion(db(), q, request_now())
    return _page("questionnaire/done.html", q, following=following,
                 following_questions=len(items_left(following)) if following else 0)


# ---------------------------------------------------------------- finding the questionnaire

def _open(token: str) -> tuple[Questionnaire | None, Response | None]:
    """The questionnaire of this link, or the refusal to answer with (404, 410, 429)."""
    address = request.remote_addr or "unknown"
    wait = limiter().waiting(UNKNOWN_PER_IP, address)
    if wait:
        return None, too_many(None, wait)
    q = find_by_token(db(), token)
    if q is None:
        wait = limiter().hit(UNKNOWN_PER_IP, address)
        log.info("questionnaire link not found (%s)", "now limited" if wait else "counted")
        return None, too_many(None, wait) if wait else refusal(None, "not_found", 404)
    wait = limiter().hit(PER_TOKEN, token)
    if wait:
        return None, too_many(q.language, wait)
    if is_expired(q, request_now()):
        return None, refusal(q.language, "expired", 410)
    return q, None


def _record(q: Questionnaire, item: int, value: int | None):
    if value is None:
        return None
    try:
        return record_answer(db(), settings(), q, item, value, request_now())
    except AnswerRefused:
        db().rollback()
        return None


def _thanks_still_shown(q: Questionnaire) -> bool:
    return q.completed_at is not None and request_now() - q.completed_at <= THANKS_FOR


def _whole(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 4 else None


def _foreign_origin() -> bool:
    """A browser says where a form was posted from. "null" is what it says for our own pages too
    (Referrer-Policy: no-referrer), so only a named other site is refused."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return False
    ours = {request.host, urlsplit(settings().public_base_url).netloc}
    return urlsplit(origin).netloc not in ours


# ---------------------------------------------------------------- rendering

def _page(template: str, q: Questionnaire, visit: list[Questionnaire] | None = None, **context) -> str:
    s = settings()
    visit = visit or visit_set(db(), q)
    patient = db().get(Patient, q.patient_id)
    return render_template(
        template, q=q, say=PageWords(q.language), lang=PageWords(q.language).language,
        first_name=patient.first_name if patient else "", clinic=s.clinic_name,
        crisis=s.crisis_line, emergency=s.emergency_number,
        part=visit.index(q) + 1 if q in visit else 1, parts=len(visit),
        safety=any(each.safety_raised for each in visit), **context)


def _question_page(q: Questionnaire, item: int, error: bool = False) -> str:
    scale = catalogue.get_scale(q.scale)
    language = PageWords(q.language).language
    answered = q.answered()
    return _page("questionnaire/question.html", q, scale=scale, item=scale.item(item), error=error,
                 instructions=scale.instructions.text(language), item_text=scale.item(item).text(language),
                 # The PCL-5's instruction naming the worst event opens its first question.
                 preamble=scale.preamble.text(language) if scale.preamble is not None and item == 1 else None,
                 options=[(o.value, o.text(language)) for o in scale.options_for(item)],
                 chosen=answered.get(item), count=len(scale.items),
                 back=item - 1 if item > 1 else None)


def _extra_page(q: Questionnaire, error: bool = False) -> str:
    scale = catalogue.get_scale(q.scale)
    language = PageWords(q.language).language
    return _page("questionnaire/extra.html", q, scale=scale, error=error, question=scale.extra.text(language),
                 options=[(o.value, o.text(language)) for o in scale.extra.options])


def _to_extra(q: Questionnaire) -> Response:
    return redirect(url_for(".extra", token=q.token), 303)


def _to_thanks(q: Questionnaire) -> Response:
    return redirect(url_for(".thanks", token=q.token), 303)


def _reused(q: Questionnaire):
    following = next_of_occasion(db(), q, request_now())
    return refusal(q.language, "reused", 410, following=following,
                    following_questions=len(items_left(following)) if following else 0)


def refusal(language: str | None, what: str, status: int, **context):
    """A page that says why a link cannot be used (forbidden, expired, too many tries, unknown): the
    questionnaire and check-in pages share it."""
    s = settings()
    say = PageWords(language)
    return render_template("questionnaire/refused.html", say=say, lang=say.language, what=what,
                           clinic=s.clinic_name, phone=s.clinic_phone, crisis=s.crisis_line,
                           emergency=s.emergency_number, **context), status


def too_many(language: str | None, seconds: int) -> Response:
    body, status = refusal(language, "too_many", 429, seconds=seconds)
    return Response(body, status=status, headers={"Retry-After": str(seconds)}, mimetype="text/html")


def not_found_page():
    """The app's 404 for any other /q/... address: no detail."""
    return refusal(None, "not_found", 404)


# ---------------------------------------------------------------- staff alerts

