"""Outcomes: patients who finished induction, per scale response, remission and median change,
by condition and by month, with the same per-course lines as a CSV (reminders.measures.outcomes)."""
from __future__ import annotations

import csv
import io
from datetime import date

from flask import Blueprint, Response, render_template, request

from reminders.scales import response_points_of
from reminders.measures.outcomes import NOT_RECORDED, POST_INDUCTION_DAYS, Filters, condition_label, outcomes
from reminders.models.patients import CONDITIONS
from reminders.web.context import db, settings
from reminders.web.staff import audit
from reminders.web.staff.auth import guard
from reminders.web.staff.patients import _cell

bp = Blueprint("outcomes", __name__)
guard(bp)
CSV_COLUMNS = ("patient_external_id", "condition", "induction_ended_on", "scale", "baseline", "post_induction",
               "change_points", "change_percent", "response", "remission")


def _day(name: str, problems: list[str]) -> date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(f"“{text}” is not a date (like 2026-10-01): that limit is left out.")
        return None


def _filters(problems: list[str]) -> Filters:
    condition = request.args.get("condition", "").strip()
    return Filters(condition if condition in (*CONDITIONS, NOT_RECORDED) else None,
                   _day("from", problems), _day("to", problems), settings().clinic_timezone)


@bp.get("/outcomes")
def index():
    problems: list[str] = []
    found = outcomes(db(), _filters(problems), response_points_of(settings()))
    return render_template("staff/outcomes.html", found=found, problems=problems, args=request.args,
                           pcl5_points=settings().pcl5_response_points,
                           conditions=[(c, condition_label(c)) for c in CONDITIONS] + [(NOT_RECORDED, "not recorded")],
                           post_days=POST_INDUCTION_DAYS, condition_label=condition_label)


def _yes_no(value: bool | None) -> str:
    return "" if value is None else "yes" if value else "no"


@bp.get("/outcomes.csv")
def export():
    session = db()
    found = outcomes(session, _filters([]), response_points_of(settings()))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in found.rows:
        change = row.change
        # Text cells are quoted against spreadsheet formulas; numbers (a change is negative) are not.
        writer.writerow([
            _cell(row.patient_external_id or row.patient_id), _cell(row.condition), row.induction_ended_on.isoformat(),
            row.scale.short_name, row.baseline, row.post_induction, change[0] if change else "",
            round(change[1]) if change and change[1] is not None else "", _yes_no(row.response),
            _yes_no(row.remission)])
    audit.record("export_outcomes", "report", "outcomes", rows=len(found.rows))
    session.commit()
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="outcomes.csv"'})
