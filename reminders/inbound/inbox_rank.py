"""Where a patient's text stands in the staff inbox: its rank and the reasons staff read."""
from __future__ import annotations

from reminders.inbound.symptoms import Flags

# The staff inbox's order, highest first: crises, then red flags (side effects, a high blood
# pressure, a question), then everything else.
PRIORITY_ROUTINE, PRIORITY_FLAGGED, PRIORITY_CRISIS = 0, 1, 2
FLAG_REASON_LIMIT = 300  # InboundMessage.flag_reason's length


def flag_reasons(flags: Flags, settings) -> list[str]:
    """Why a text goes to the top of the staff inbox, in words staff read at a glance."""
    reasons = []
    high = flags.high_pressures(settings.bp_alert_systolic, settings.bp_alert_diastolic)
    effects = list(flags.side_effects)
    if flags.pressures and not high and "blood pressure" in effects:
        effects.remove("blood pressure")  # a normal reading, given as asked
    if high and "blood pressure" in effects:
        effects.remove("blood pressure")
    if effects:
        reasons.append("side effects: " + ", ".join(effects))
    if high:
        reasons.append("blood pressure " + ", ".join(f"{s}/{d}" for s, d in high))
    if flags.question:
        reasons.append("a question")
    return reasons
