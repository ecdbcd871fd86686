"""The provider banner: what staff read while a channel's provider is not answering.

Plain words first: what is happening, that waiting messages go by themselves, and what staff can
do. The provider's own error is kept for admins behind a <details> on the page, never in the
headline and never in /live.json (the poll carries these words, so that an open page shows the
banner appear and clear without a reload).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from reminders.channel_specs import SPECS
from reminders.provider_health import provider_status
from reminders.web.staff.display import localize, time_only
# An outage longer than this is when a clinic picks up the phone for the visits coming up.
CALL_PATIENTS_AFTER = timedelta(minutes=30)
VISITS_SOON_HOURS = 2


def _since(at: datetime, now: datetime) -> str:
    """9:41 AM today; Dec 6, 9:41 AM on an earlier day."""
    local, today = localize(at), localize(now).date()
    clock = time_only(at).rsplit(" ", 1)[0]  # the clinic's own zone: no zone name needed
    return clock if local.date() == today else f"{local:%b} {local.day}, {clock}"


def outage_words(channel: str, provider: str) -> tuple[str, str]:
    """(what stops going out, who has to answer again): "Text messages", "Twilio" (the channel's spec)."""
    spec = SPECS.get(channel)
    if spec is None:
        return f"{provider} messages", provider
    return spec.plural, spec.provider_label


def who_answers(channel: str) -> str:
    """Who staff wait for while the channel is paused: "Twilio", "the email server"."""
    spec = SPECS.get(channel)
    return spec.provider_label if spec is not None and spec.provider_label else "the provider"


def banner(status: dict, now: datetime) -> dict:
    """One paused channel's banner: headline, detail, the advice and a key that changes with them."""
    what, who = outage_words(status["channel"], status["provider"])
    since = status["failing_since"] or now
    waiting = status["waiting"]
    headline = f"{what} have not gone out since {_since(since, now)}."
    if waiting:
        detail = (f"{waiting} {'is' if waiting == 1 else 'are'} waiting and will go automatically when {who} "
                  "answers again; nothing needs to be done.")
    else:
        detail = f"New ones wait and go automatically when {who} answers again; nothing needs to be done."
    alerts = ("Crisis alerts to staff are also waiting: keep the Escalations page open."
              if status["alerts_waiting"] else "")
    advice = (f"If this lasts past {_since(since + CALL_PATIENTS_AFTER, now)}, call the patients with visits in "
              f"the next {VISITS_SOON_HOURS} hours.")
    return {"channel": status["channel"], "headline": headline, "detail": detail, "alerts": alerts,
            "advice": advice, "recovered": f"{what} are going out again.", "waiting": waiting, "alerts_waiting": status["alerts_waiting"],
            "last_error": status["last_error"], "key": "|".join((headline, detail, alerts, advice))}


def provider_banners(session, now: datetime) -> list[dict]:
    """A banner for each channel whose provider is failing and paused."""
    return [banner(status, now) for status in provider_status(session, now) if status["state"] == "paused"]


def for_the_poll(banners: list[dict]) -> list[dict]:
    """What /live.json carries: the words, never the provider's raw error."""
    return [{key: value for key, value in item.items() if key != "last_error"} for item in banners]
