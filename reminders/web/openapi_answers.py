"""What each JSON API route answers, as the OpenAPI document's components (reminders.web.openapi).

Every property of an answer is required: the routes always send it, null when there is nothing.
"""
from __future__ import annotations

import copy

from reminders.web.openapi_schemas import BOOL, INT, STR, TIME, array, nullable, obj, ref, result_of

# The types most fields have: text, and text, a time or a number that may be null.
SHORT = (STR, nullable(STR), nullable(TIME), nullable(INT))
RESULTS = ("created", "updated", "unchanged")


def response_schemas() -> dict[str, dict]:
    return {**visit_answers(), **reply_answers(), **measure_answers(), **service_answers(), **list_answers(),
            **location_answers()}


def visit_answers() -> dict[str, dict]:
    s, ns, nt, ni = SHORT
    patient = obj({
        "external_id": s, "first_name": s, "last_name": s, "phone": ns, "email": ns, "timezone": s,
        "preferred_channel": s, "sms_opted_out": BOOL, "opted_out_at": nt, "opt_out_text": ns,
        "opted_in_at": nt, "language": s, "medications_to_hold": ns,
        "condition": {**ns, "description": "what the open course (else the latest) treats"},
    }, description="A patient, with opt-out state.")
    appointment = obj({
        "external_id": s, "patient_external_id": s, "kind": s, "number_in_course": ni, "series_length": ni,
        "condition": ns, "starts_at": TIME, "duration_minutes": INT,
        "location": {**ns, "description": "the location (or room) as booked"},
        "location_code": {**ns, "description": "the code of the clinic location the visit is at (GET /locations); "
                                               "null: the default location"},
        "status": s,
        "confirmed_at": nt, "reschedule_requested_at": nt, "canceled_at": nt, "needs_planning": BOOL,
        "planning_error": {**ns, "description": "why no reminders could be planned, if so"},
    }, description="An appointment, with confirmation and reschedule request.")
    message = obj({
        "id": INT, "direction": {"const": "out"}, "appointment_external_id": ns, "kind": s, "rule": ns,
        "channel": s, "status": s, "status_reason": ns, "planned_for": nt, "due_at": nt, "sent_at": nt,
        "delivered_at": nt, "to": ns, "subject": ns, "body": ns, "segments": ni, "attempts": INT,
        "provider_id": ns, "provider_status": ns, "error_code": ns, "error_message": ns,
    }, description="A message planned or sent, with its state.")
    problem = copy.deepcopy(message)
    problem["properties"]["patient_external_id"] = ns
    problem["required"].append("patient_external_id")
    visit = obj({"external_id": ns, "kind": s, "number_in_course": ni, "starts_at": TIME, "status": s})
    return {
        "Patient": patient, "PatientResult": result_of("PatientResult", RESULTS, patient),
        "Appointment": appointment, "AppointmentResult": result_of("AppointmentResult", RESULTS, appointment),
        "Message": message, "DeliveryProblem": problem, "Visit": visit,
    }


def reply_answers() -> dict[str, dict]:
    s, ns, nt, ni = SHORT
    checkin = obj({
        "id": INT, "status": {**s, "description": "awaiting, reasked, answered or to_staff"},
        "kind": {**s, "description": "mood (0 worst, 10 best) or pain (0 none, 10 worst)"},
        "score": ni, "note": ns, "details": ns, "raw_text": ns, "prompted_at": nt, "reasked_at": nt,
        "answered_at": nt, "appointment_external_id": ns, "appointment_starts_at": nt,
        "follows": nullable(ref("Visit")), "inbound_message_id": ni,
    }, description="A mood (or pain) check-in after a visit.")
    reply = obj({
        "id": INT, "direction": {"const": "in"}, "received_at": TIME, "from": s, "patient_external_id": ns,
        "appointment_external_id": ns, "body": s, "classification": s, "needs_staff": BOOL,
        "priority": {**INT, "description": "2 crisis, 1 a nurse today, 0 routine"}, "flag_reason": ns,
        "done_at": nt, "done_by": ns, "reply": ns, "message_sid": ns,
    }, description="A text from a patient.")
    alert = obj({"id": INT, "channel": s, "to": ns, "status": s, "error_code": ns, "sent_at": nt,
                 "delivered_at": nt})
    escalation = obj({
        "id": INT, "status": {**s, "enum": ["open", "claimed", "acknowledged"],
                              "description": "open: staff are alerted; claimed: a person is on it, alerts "
                                             "stopped; acknowledged: resolved with a note"},
        "reason": s, "opened_at": TIME,
        "patient_external_id": ns, "patient_name": ns, "from": ns, "text": ns, "inbound_message_id": ni,
        "alert_round": INT, "last_alerted_at": nt, "next_alert_at": nt, "acknowledged_at": nt,
        "acknowledged_by": ns, "ack_note": ns, "claimed_at": nt, "claimed_by": ns, "alerts": array(ref("Alert")),
    }, description="A possible crisis, with the alerts sent about it.")
    nudge = obj({"channel": s, "status": s, "due_at": nt, "sent_at": nt})
    followup = obj({
        "patient_external_id": ns, "patient_name": ns, "phone": ns, "kind": s, "reason": s, "due_by": nt,
        "overdue": BOOL, "last_visit": nullable(ref("Visit")), "next_visit": nullable(ref("Visit")),
        "missed_visit": nullable(ref("Visit")), "nudge": nullable(ref("Nudge")),
    }, description="A patient who should be booked and is not.")
    return {
        "CheckIn": checkin, "Reply": reply, "Alert": alert, "Escalation": escalation,
        "EscalationResult": result_of("EscalationResult", ("acknowledged", "already_acknowledged"), escalation),
        "Nudge": nudge, "Followup": followup,
    }


def measure_answers() -> dict[str, dict]:
    s, ns, nt, ni = SHORT
    questionnaire = obj({
        "id": INT, "scale": s, "occasion": s, "visit_external_id": ns, "channel": s, "language": s, "status": s,
        "expired": BOOL, "sent_at": nt, "expires_at": nt, "completed_at": nt,
        "score": {**ni, "description": "null for a screen negative"}, "band": ns, "band_label": ns,
        "screened_out": BOOL, "screen": nullable({**STR, "enum": ["negative"]}), "screen_name": ns,
        "screen_score": ni, "safety_raised": BOOL,
        "answers": {"type": "object", "additionalProperties": INT, "description": "item number -> answer"},
    }, description="A validated questionnaire (PHQ-9, GAD-7, PCL-5, pain). A scale with an extra question "
                   "adds it and its `<key>_label`.")
    point = obj({"questionnaire_id": INT, "score": ni, "band": ns, "occasion": s, "completed_at": nt})
    screen = obj({"questionnaire_id": INT, "screen": {"const": "negative"}, "screen_name": ns,
                  "screen_score": ni, "label": ns, "occasion": s, "completed_at": nt})
    summary = obj({
        "scale": s, "name": s, "scores": INT, "baseline": nullable(ref("ScorePoint")),
        "latest": nullable(ref("ScorePoint")), "change_points": ni,
        "change_percent": nullable({"type": "number"}), "response": nullable(BOOL), "response_rule": ns,
        "remission": nullable(BOOL), "screen_negatives": array(ref("ScreenNegative")),
    }, description="A scale's progress over the current course (null without a threshold or a second score).")
    return {"Questionnaire": questionnaire, "ScorePoint": point, "ScreenNegative": screen, "ScaleSummary": summary}


def service_answers() -> dict[str, dict]:
    s, ns, nt, ni = SHORT
    provider = obj({
        "channel": s, "provider": ns, "state": {**s, "enum": ["ok", "failing", "paused"]},
        "failing_since": nt, "consecutive_failures": INT, "paused_until": nt, "last_error": ns,
        "waiting": INT, "alerts_waiting": INT,
    }, description="A channel's provider, as the circuit breaker sees it.")
    error = obj({
        "error": {**s, "description": "what is wrong, in words"},
        "errors": {**array(STR), "description": "each reason (invalid fields)"},
        "fields": {**array(STR), "description": "the fields the reasons are about (`body` for the body itself)"},
    }, required=("error",), description="Every 4xx answer of the API.")
    return {"ProviderStatus": provider, "Error": error}


def list_answers() -> dict[str, dict]:
    s, ns = STR, nullable(STR)
    return {
        "MessageList": obj({"patient_external_id": s, "messages": array(ref("Message"))}),
        "CheckInList": obj({"patient_external_id": s, "checkins": array(ref("CheckIn"))}),
        "ReplyList": obj({"patient_external_id": s, "replies": array(ref("Reply"))}, required=("replies",),
                         description="patient_external_id only when asked for one patient"),
        "EscalationList": obj({"escalations": array(ref("Escalation"))}),
        "FollowupList": obj({"followups": array(ref("Followup"))}),
        "DeliveryProblemList": obj({"messages": array(ref("DeliveryProblem"))}),
        "Measures": obj({
            "patient_external_id": s, "condition": ns, "questionnaires": array(ref("Questionnaire")),
            "summary": {"type": "object", "additionalProperties": ref("ScaleSummary"),
                        "description": "scale key -> progress over the current course"},
        }),
        "ProviderStatusList": obj({"providers": array(ref("ProviderStatus")), "paused": array(STR)}),
    }


def location_answers() -> dict[str, dict]:
    s, ns, nt, ni = SHORT
    location = obj({
        "id": {**ni, "description": "null: the default location (the clinic's settings)"},
        "code": {**s, "description": "what `location` names in a CSV row or an appointment; \"\" for the default"},
        "name": {**s, "description": "as patients read it"}, "address": s, "phone": s, "timezone": s,
        "sender": {**s, "description": "the number (or Messaging Service) its texts go from"},
        "office_hours": {**s, "description": "HH:MM-HH:MM"}, "office_days": array(STR), "holidays": array(STR),
        "oncall_phones": array(STR), "oncall_emails": array(STR), "arrive_minutes_before": INT,
        "rideshare_allowed": BOOL, "active": {**BOOL, "description": "false: closed to new visits"},
    }, description="A clinic location: its own settings, each the clinic's unless the location sets it.")
    return {
        "Location": location,
        "LocationList": obj({"locations": array(ref("Location"))}, description="The default location first."),
        "OpenAPI": {"type": "object", "description": "this document"},
    }
