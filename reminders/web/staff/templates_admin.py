"""Templates (admins): every message by rule and channel, an editor with a live preview, versions.

The files in templates/ stay the defaults. A save adds a TemplateVersion row; the newest active
row is what is sent. A save is refused (template_checks) when the text would fail for some patient,
when a crisis or emergency answer leaves out its lifeline, or when a text is over its segment
budget; that last one only until an admin ticks "Send it anyway as N segments" (audit-logged). Restoring copies an old version into a new row; "reset to default"
deactivates every version of that template.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select, update

from reminders.channel_specs import template_parts
from reminders.models import TemplateVersion
from reminders.rendering import TemplateProblem, TemplateStore
from reminders.timing.rules import RuleSettings, default_rules
from reminders.web.context import db, request_now, settings
from reminders.web.staff import audit, template_checks
from reminders.web.staff.auth import current_user, guard
from reminders.web.staff.display import rule_label
from reminders.web.staff.headers import SECURITY_HEADERS

bp = Blueprint("templates_admin", __name__, url_prefix="/admin/templates")
guard(bp, admin=True)

RULE_TITLES = {
    "first_induction_72h": "First infusion, 72 hours before",
    "first_induction_24h": "First infusion, 24 hours before",
    "induction_24h": "Later infusions, 24 hours before",
    "maintenance_7d": "Maintenance visit, 7 days before",
    "maintenance_24h": "Maintenance visit, 24 hours before",
    "checkin_day_after": "Check-in the day after a visit",
    "checkin_weekly": "Weekly check-in between maintenance visits (weeks 1 and 4)",
    "checkin_weekly_b": "Weekly check-in, second wording (weeks 2 and 5)",
    "checkin_weekly_c": "Weekly check-in, third wording (weeks 3 and 6)",
    "rebook_nudge": "Nudge to book the next visit",
    "missed_visit": "We missed you (a visit marked no-show)",
    "plan_maintenance": "Plan your maintenance (after the last induction infusion)",
    "caring_contact": "Caring contact after the series (weeks 1 and 5)",
    "caring_contact_b": "Caring contact, second wording (weeks 2 and 6)",
    "caring_contact_c": "Caring contact, third wording (weeks 3 and 7)",
    "caring_contact_d": "Caring contact, fourth wording (weeks 4 and 8)",
}
OTHER_TITLES = {
    "welcome": "Welcome text (first SMS to a new number)",
    "reply_checkin_reask": "Check-in answer not understood: asked again",
    "reply_checkin_thanks": "Check-in answered: thanks",
    "reply_confirmed": "Visit confirmed (C)",
    "reply_reschedule": "Reschedule asked (R)",
    "reply_no_visit": "C or R with no upcoming visit",
    "reply_crisis": "Crisis answer (crisis line and emergency number)",
    "reply_emergency": "Medical emergency answer (emergency number first)",
    "reply_urgent": "Urgent text: on-call paged (who will call, and when)",
    "reply_possible_risk": "Flagged for review by the second opinion (gentle, with the crisis line)",
    "reply_follow_up_emergency": "New text during an open medical emergency",
    "reply_follow_up_crisis": "New text during an open suicide-risk escalation",
    "reply_follow_up_urgent": "New text during an open urgent escalation",
    "reply_follow_up_ack": "Thanks or \"who is this?\" during an open escalation",
    "reply_help": "HELP",
    "reply_stop": "STOP (opted out)",
    "reply_start": "START (opted back in)",
    "reply_received": "Free text passed to staff",
    "reply_unknown": "Text from an unknown number",
}


LANGUAGE_LABELS = {"es": "Spanish"}


def part_labels() -> dict[str, str]:
    """{"sms": "SMS", ..., "html": "Email HTML"}: each template part in staff's words (the channels' specs)."""
    return {part.name: part.label for part in template_parts()}


def part_order() -> tuple[str, ...]:
    """A template's files in the order of the channels and their parts: SMS, WhatsApp, the email's."""
    return tuple(part.name for part in template_parts())


@dataclass
class TemplateFile:
    name: str
    part: str
    current: TemplateVersion | None

    @property
    def language(self) -> str | None:
        return self.name.split("/", 1)[0] if "/" in self.name else None

    @property
    def lifelines(self) -> str:
        """"988 and 911" for a crisis answer: what it must give (template_checks.LIFELINES)."""
        needed = template_checks.lifelines_of(self.name)
        if needed is None:
            return ""
        numbers = [lifeline.number(settings()) for lifeline in needed[1]]
        return ", ".join(numbers[:-1]) + " and " + numbers[-1] if len(numbers) > 1 else numbers[0]

    @property
    def label(self) -> str:
        if self.language:
            return f"{part_labels()[self.part]} · {LANGUAGE_LABELS.get(self.language, self.language)}"
        return part_labels()[self.part]


@dataclass
class TemplateGroup:
    base: str
    title: str
    rules: list[str] = field(default_factory=list)
    channels: set[str] = field(default_factory=set)
    files: list[TemplateFile] = field(default_factory=list)


def store() -> TemplateStore:
    return TemplateStore(settings().templates_dir, db())


def current_versions() -> dict[str, TemplateVersion]:
    rows = db().scalars(select(TemplateVersion).where(TemplateVersion.active)
                        .order_by(TemplateVersion.created_at, TemplateVersion.id))
    return {row.name: row for row in rows}  # the newest active one wins, as in TemplateStore


def catalogue() -> tuple[list[TemplateGroup], list[TemplateGroup], list[TemplateGroup]]:
    """(groups used by the clinic's rules, answers to patients' texts, the rest), with their files."""
    groups: dict[str, TemplateGroup] = {}
    for rule in default_rules(RuleSettings.from_settings(settings())):
        title = RULE_TITLES.get(rule.template) or rule_label(rule.template)
        group = groups.setdefault(rule.template, TemplateGroup(rule.template, title))
        group.rules.append(rule.name)
        group.channels |= set(rule.channels)
    others: dict[str, TemplateGroup] = {}
    versions = current_versions()
    for name in store().all_names():
        part = template_checks.part_of(name)
        base = template_checks.base_name(name)  # es/welcome.sms.j2 sits with welcome.sms.j2
        group = groups.get(base) or others.setdefault(
            base, TemplateGroup(base, OTHER_TITLES.get(base, base.replace("_", " ").capitalize())))
        group.files.append(TemplateFile(name, part, versions.get(name)))
    for group in (*groups.values(), *others.values()):
        group.files.sort(key=lambda f: (f.language or "", part_order().index(f.part)))
    replies = [g for g in others.values() if g.base.startswith("reply_")]
    rest = [g for g in others.values() if not g.base.startswith("reply_")]
    return [g for g in groups.values() if g.files], replies, rest


def editable(name: str) -> str:
    if name not in store().all_names():
        abort(404)
    return name


@bp.get("/")
def index():
    used, replies, others = catalogue()
    versions = current_versions()
    failing = [v for v in versions.values() if v.failed_at is not None]
    return render_template("staff/templates_list.html", groups=used, replies=replies, others=others,
                           failing=sorted(failing, key=lambda v: v.failed_at, reverse=True),
                           without_lifeline=_without_lifeline(versions))


def _without_lifeline(versions: dict[str, TemplateVersion]) -> list[TemplateVersion]:
    """Edited crisis and emergency answers saved before their lifelines were checked, that lack
    one: reminders.inbound sends its built-in answer in their place, so admins are told."""
    the_store = store()
    lacking = []
    for name, version in sorted(versions.items()):
        if template_checks.lifelines_of(name) is None or version.failed_at is not None:
            continue
        try:
            problem = _limited(template_checks.check, the_store, name, version.source)
        except template_checks.PreviewBusy:
            continue  # told on a later look
        if isinstance(problem, template_checks.MissingLifeline):
            lacking.append(version)
    return lacking


def _editor_policy() -> str:
    # The HTML email preview (a sandboxed srcdoc frame, no script) inherits this page's policy;
    # emails carry their styles inline, so this one page allows inline styles.
    return SECURITY_HEADERS["Content-Security-Policy"].replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


BUSY = "Other template previews are running: try again in a moment."


def _limited(function, the_store: TemplateStore, name: str, source: str, *more):
    """A check or preview on the checks' own threads (see template_checks.run_limited)."""
    the_store.overrides()  # read here, on the request's session; the check itself needs no database
    return template_checks.run_limited(function, the_store, settings(), name, source, *more)


def _busy_response():
    if request.is_json:
        response = jsonify({"ok": False, "busy": True, "message": BUSY})
    else:
        response = render_template("staff/error.html", title="Preview busy", message=BUSY)
    return response, 503, {"Retry-After": "2"}


def _editor(name: str, source: str, problem: TemplateProblem | None = None, status: int = 200):
    the_store = store()
    the_settings = settings()
    versions = db().scalars(select(TemplateVersion).where(TemplateVersion.name == name)
                            .order_by(TemplateVersion.created_at.desc(), TemplateVersion.id.desc())).all()
    current = current_versions().get(name)
    try:
        first_preview = _limited(template_checks.preview, the_store, name, source)
    except template_checks.PreviewBusy:
        first_preview = TemplateProblem(name, None, BUSY)
    page = render_template(
        "staff/template_edit.html", name=name, part=template_checks.part_of(name), part_label=part_labels(),
        segmented=template_checks.segmented(name),
        source=source, default_source=the_store.default_source(name) or "", versions=versions, current=current,
        problem=problem, problem_message=template_checks.problem_message(problem) if problem else "",
        over_budget=problem if isinstance(problem, template_checks.OverBudget) else None,
        preview=first_preview if not isinstance(first_preview, TemplateProblem) else None,
        preview_problem=first_preview if isinstance(first_preview, TemplateProblem) else None,
        variables=template_checks.variable_groups(the_store, the_settings, name),
        lifelines=_lifeline_words(name), splits=template_checks.may_split(the_settings, name),
    )
    return page, status, {"Content-Security-Policy": _editor_policy()}


def _lifeline_words(name: str) -> list[str]:
    """"the crisis line (988)", ...: what this answer must give, told before the admin types."""
    needed = template_checks.lifelines_of(name)
    if needed is None:
        return []
    return [f"{lifeline.what} ({lifeline.number(settings())})"
            + (" when the text is about an overdose or a poisoning" if lifeline.only_for_overdose else "")
            for lifeline in needed[1]]


@bp.get("/<path:name>")
def edit(name: str):
    editable(name)
    current = current_versions().get(name)  # even one flagged as failing: the admin is here to fix it
    return _editor(name, current.source if current else store().source(name) or "")


@bp.post("/<path:name>")
def save(name: str):
    editable(name)
    source = request.form.get("source", "").replace("\r\n", "\n")
    send_anyway = request.form.get("send_anyway", type=int)  # the box appears only after a refusal
    the_store = store()
    try:
        problem, over = _limited(template_checks.assess, the_store, name, source, send_anyway)
    except template_checks.PreviewBusy:
        return _busy_response()
    if problem is not None:
        return _editor(name, source, problem, 422)
    if source == the_store.source(name):
        flash("Nothing changed: no new version saved.", "info")
        return redirect(url_for(".edit", name=name))
    version = _add_version(name, source)
    if over is not None:
        audit.record("save_template", "template", name, version_id=version.id, over_budget_segments=over.segments,
                     over_budget=over.reason)
        flash(f"Saved over the budget: it goes as {over.segments} segments. Messages sent from now on use this "
              "version.", "ok")
    else:
        audit.record("save_template", "template", name, version_id=version.id)
        flash("Saved. Messages sent from now on use this version.", "ok")
    db().commit()
    return redirect(url_for(".edit", name=name))


def _add_version(name: str, source: str) -> TemplateVersion:
    version = TemplateVersion(name=name, source=source, active=True, created_by=current_user().email,
                              created_at=request_now())
    db().add(version)
    db().flush()
    return version


@bp.post("/<path:name>/preview")
def preview(name: str):
    editable(name)
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get("source"), str):
        return jsonify({"ok": False, "message": "send JSON like {\"source\": \"...\"}"}), 400
    try:
        result = _limited(template_checks.preview, store(), name, data["source"].replace("\r\n", "\n"))
    except template_checks.PreviewBusy:
        return _busy_response()
    if isinstance(result, TemplateProblem):
        return jsonify({"ok": False, "line": result.line, "reason": result.reason,
                        "message": template_checks.problem_message(result)}), 422
    return jsonify(result.as_json())


@bp.post("/<path:name>/versions/<int:version_id>/restore")
def restore(name: str, version_id: int):
    editable(name)
    old = db().get(TemplateVersion, version_id)
    if old is None or old.name != name:
        abort(404)
    try:
        problem = _limited(template_checks.check, store(), name, old.source)
    except template_checks.PreviewBusy:
        return _busy_response()
    if problem is not None:
        return _editor(name, old.source, problem, 422)
    version = _add_version(name, old.source)
    audit.record("restore_template", "template", name, version_id=version.id, restored_from=old.id)
    db().commit()
    flash(f"Version {old.id} restored as version {version.id}.", "ok")
    return redirect(url_for(".edit", name=name))


@bp.post("/<path:name>/reset")
def reset(name: str):
    editable(name)
    db().execute(update(TemplateVersion).where(TemplateVersion.name == name, TemplateVersion.active)
                 .values(active=False))
    audit.record("reset_template", "template", name)
    db().commit()
    flash("Back to the default text from templates/. Earlier versions stay listed and can be restored.", "ok")
    return redirect(url_for(".edit", name=name))
