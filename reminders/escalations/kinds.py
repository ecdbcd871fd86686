"""What an escalation is: its statuses, the reasons it opens for, the triage tier each answers as,
and the words staff read for them (reminders.escalations opens, alerts and closes them)."""
from __future__ import annotations

from reminders.models import Escalation

OPEN, CLAIMED, ACKNOWLEDGED = "open", "claimed", "acknowledged"
RESOLVED = ACKNOWLEDGED  # the stored word for a resolved escalation (the API's "acknowledged")
# Not resolved yet: texts still join it and automated asks still wait for it.
ACTIVE = (OPEN, CLAIMED)
REASON_CRISIS, REASON_EMERGENCY, REASON_LOW_SCORE = "crisis_language", "medical_emergency", "low_score"
# An answer above 0 to a questionnaire's self-harm item (PHQ-9 item 9): no text, the same urgency.
REASON_SELF_HARM = "self_harm_answer"
# The triage's urgent tier: a text a nurse must read now, at any hour (a high blood pressure with a
# headache, vomiting that won't stop, a medication question, a worried relative...).
REASON_URGENT = "urgent"
REASON_WORDS = {REASON_CRISIS: "possible suicide risk", REASON_EMERGENCY: "possible medical emergency",
                REASON_LOW_SCORE: "very low mood score", REASON_SELF_HARM: "self-harm answer",
                REASON_URGENT: "needs a nurse now"}
_TIER_OF_REASON = {REASON_EMERGENCY: "emergency", REASON_URGENT: "urgent"}
# The kind staff see everywhere (the list, the banner, the patient's page), gravest first.
KIND_WORDS = {"emergency": "Medical emergency", "suicide_risk": "Suicide risk", "urgent": "Urgent"}
_KIND_ORDER = {"emergency": 0, "suicide_risk": 1, "urgent": 2}
# Inbound classifications that belong to an escalation (see reminders.inbound.replies).
CRISIS_CLASSIFICATIONS = ("crisis", "low_score", "urgent", "follow_up")


def tier_of(reason: str) -> str:
    """The triage tier an escalation of this reason answers as (emergency, suicide_risk, urgent)."""
    return _TIER_OF_REASON.get(reason, "suicide_risk")


def kind_of(escalation: Escalation) -> str:
    """The escalation's kind in words: "Medical emergency", "Suicide risk" or "Urgent"."""
    return KIND_WORDS.get(tier_of(escalation.reason), "Needs a nurse")


def severity_order(escalation: Escalation) -> tuple:
    """Sort key: medical emergencies, then suicide risk, then urgent, then anything else; the
    oldest first within each (it has waited longest)."""
    return (_KIND_ORDER.get(tier_of(escalation.reason), len(_KIND_ORDER)), escalation.opened_at, escalation.id)


def reason_for(tier: str, category: str) -> str:
    """The escalation's reason for a triage result."""
    if tier == "emergency":
        return REASON_EMERGENCY
    if tier == "urgent":
        return REASON_URGENT
    return REASON_LOW_SCORE if category == "low score" else REASON_CRISIS


def staff_words(triage) -> str:
    """Why the text is in the inbox, at a glance: the tier and what decided it."""
    tier = {"emergency": "possible medical emergency", "suicide_risk": "possible suicide risk",
            "urgent": "urgent"}.get(str(triage.tier), "possible crisis")
    if triage.by_model:
        return "possible risk: please read (flagged by the second opinion)"
    if triage.category == "follow-up":
        return f"{tier}: a new text while the escalation is open"
    return f"{tier}: {triage.category}" if triage.category not in ("routine", "unreadable") else tier
