"""Today for the front desk: what needs action in front of each visit, messages one click away."""
from __future__ import annotations

import re
from datetime import timedelta

from tests.conftest import clock_now
from tests.fixtures.staff import add_outbox, add_patient, add_visit


def row_of(text: str, name: str) -> str:
    rows = re.findall(r'<li class="visit-row card.*?</li>\s*(?=<li class="visit-row|</ul>\s*</section>)', text, re.S)
    matching = [r for r in rows if f"{name}</a>" in r]
    assert len(matching) == 1, (name, len(rows))
    return matching[0]


def flags(row: str) -> list[str]:
    return re.findall(r'<li class="flag flag-\w+"[^>]*>([^<]+)<', row)


def test_each_visit_shows_what_needs_action(staff_client, sessions):
    now = clock_now()
    with sessions() as session:
        first = add_patient(session, "p1", "Nia", "First", "+12025550101")
        add_visit(session, first, "n1", now + timedelta(hours=20))
        later = add_patient(session, "p2", "Leo", "Later", "+12025550102")
        add_visit(session, later, "l1", now - timedelta(days=5), status="completed")
        add_visit(session, later, "l2", now + timedelta(days=4))
        asked = add_patient(session, "p3", "Ria", "Asked", "+12025550103")
        visit = add_visit(session, asked, "r1", now + timedelta(days=3))
        visit.reschedule_requested_at = now
        visit.number_in_course = 2
        session.commit()
    text = staff_client.get("/").text
    assert flags(row_of(text, "Nia First")) == ["Needs ride confirmation", "First infusion"]
    assert flags(row_of(text, "Leo Later")) == ["Not confirmed"]
    assert flags(row_of(text, "Ria Asked"))[0] == "Reschedule asked"


def test_no_booking_nudge_for_a_patient_already_booked(staff_client, sessions):
    now = clock_now()
    with sessions() as session:
        patient = add_patient(session)
        first = add_visit(session, patient, "v1", now + timedelta(hours=30))
        add_visit(session, patient, "v2", now + timedelta(days=3))
        add_outbox(session, patient, first, "rebook_nudge", "sms", "planned", now + timedelta(days=3))
        add_outbox(session, patient, first, "first_induction_24h", "sms", "planned", now + timedelta(hours=6))
    text = staff_client.get("/").text
    row = re.search(r'<details class="visit-messages">.*?</details>', text, re.S).group(0)
    assert "Messages: 1 planned" in row and row.count('<li class="msg') == 1  # the nudge is left out
