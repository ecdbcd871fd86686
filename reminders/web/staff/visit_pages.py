"""The "visits" blueprint: the staff pages that add and change patients, visits and courses by hand.

Its routes live by job in patient_form, visits, visit_marks, visit_courses and visit_imports;
reminders.web.staff.visits brings them all in.
"""
from __future__ import annotations

from flask import Blueprint

from reminders.web.staff import location_filter
from reminders.web.staff.auth import guard

bp = Blueprint("visits", __name__)
guard(bp)
# A visit's clinic location by name, on any staff page (nothing while the clinic has one location).
bp.add_app_template_global(location_filter.place_name, "place_name")
