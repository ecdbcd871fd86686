"""The staff app across a clinic's locations: admins add and change locations and choose where each
user works; Today, the inbox and the escalations show a user their locations' (and the default
location's, which belongs to everyone), and a select narrows them to one location."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.locations import save_location, set_staff_locations, staff_locations
from reminders.models import AuditEntry, Location, StaffUser
from tests.conftest import both_databases, clock_now
from tests.fixtures.staff import (add_escalation, add_inbound, add_patient, add_visit, make_user, post_form,
                                  signed_in)

settings = both_databases()

AUSTIN = {"code": "austin", "name": "Bright Minds Austin", "timezone": "America/Chicago",
          "sender": "+15125550100", "oncall_phones": "+15125550199"}
DENVER = {"code": "denver", "name": "Bright Minds Denver", "timezone": "America/Denver", "sender": "+17205550100"}


def add_location(sessions, fields: dict) -> int:
    with sessions() as session:
        location = save_location(session, fields)
        session.commit()
        return location.id


@pytest.fixture
def clinic(sessions):
    """Three patients, each with a visit today and a text waiting in the inbox: one at Austin, one at
    Denver, one at the default location (a visit booked without a location)."""
    austin, denver = add_location(sessions, AUSTIN), add_location(sessions, DENVER)
    now = clock_now()
    with sessions() as session:
        for number, (first, location_id) in enumerate((("Ana", austin), ("Dev", denver), ("Mel", None))):
            patient = add_patient(session, f"p{number}", first, "Place", f"+1202555014{number}")
            visit = add_visit(session, patient, f"v{number}", now + timedelta(minutes=30))
            visit.location_id = location_id
            session.commit()
            add_inbound(session, patient, f"a question from {first}")
            add_escalation(session, patient, text=f"crisis words from {first}", location_id=location_id)
    return {"austin": austin, "denver": denver}


def austin_nurse(app, sessions, clinic):
    client = signed_in(app, sessions, "nurse@clinic.test", "staff")
    with sessions() as session:
        user = session.scalar(select(StaffUser).where(StaffUser.email == "nurse@clinic.test"))
        set_staff_locations(session, user.id, [clinic["austin"]])
        session.commit()
    return client


def names_on(text: str) -> set[str]:
    return {name for name in ("Ana", "Dev", "Mel") if f"{name} Place</a>" in text}


def main_of(text: str) -> str:
    return re.search(r'<main.*</main>', text, re.S).group(0)


def select_options(text: str) -> list[str]:
    pick = re.search(r'<select id="location-pick".*?</select>', text, re.S)
    return re.findall(r'<option value="[^"]*"[^>]*>([^<]+)</option>', pick.group(0)) if pick else []


# --- The Locations page ---------------------------------------------------------------------------

def test_admin_adds_a_location_and_changes_it(admin_client, sessions):
    page = admin_client.get("/admin/locations")
    assert page.status_code == 200 and "The Infusion Clinic" in page.text and "comes from the settings" in page.text
    form = admin_client.get("/admin/locations/new").text
    assert "Empty: CLINIC_TIMEZONE, America/New_York" in form and "Empty: STAFF_ALERT_PHONES (not set)" in form

    added = post_form(admin_client, "/admin/locations/new",
                      {"code": "austin", "name": "Bright Minds Austin", "timezone": "America/Chicago",
                       "sender": "+15125550100", "oncall_phones": "+15125550199", "active": "yes"},
                      token_from="/admin/locations/new", follow_redirects=True)
    assert added.status_code == 200 and "Bright Minds Austin is added" in added.text
    row = re.search(r'<tr[^>]*id="location-austin".*?</tr>', added.text, re.S).group(0)
    assert "America/Chicago" in row and "+15125550100" in row and "+15125550199" in row and "active" in row

    changed = post_form(admin_client, "/admin/locations/austin/edit",
                        {"code": "austin", "name": "Bright Minds Austin", "timezone": "", "sender": "+15125550100",
                         "office_days": "mon-thu"},
                        token_from="/admin/locations/austin/edit", follow_redirects=True)
    assert "Bright Minds Austin is saved" in changed.text
    with sessions() as session:
        austin = session.scalar(select(Location).where(Location.code == "austin"))
        assert (austin.timezone, austin.office_days, austin.oncall_phones, austin.active) == \
            (None, "mon-thu", None, False)
        entries = session.scalars(select(AuditEntry).where(AuditEntry.target_type == "location")
                                  .order_by(AuditEntry.id)).all()
    assert [e.action for e in entries] == ["create_location", "edit_location"]
    assert entries[0].actor == "admin@clinic.test" and entries[0].detail["code"] == "austin"
    assert "time zone" in entries[1].detail["changed"] and "office days" in entries[1].detail["changed"]
    assert "Changed a location" in admin_client.get("/admin/audit").text


def test_a_bad_time_zone_is_refused_in_words_and_what_was_typed_stays(admin_client, sessions):
    refused = post_form(admin_client, "/admin/locations/new",
                        {"code": "austin", "name": "Bright Minds Austin", "timezone": "EST", "sender": "+15125550100"},
                        token_from="/admin/locations/new")
    assert refused.status_code == 422
    summary = re.search(r'<div class="notice notice-error span-2 error-summary" role="alert" tabindex="-1">.*?</div>',
                        refused.text, re.S).group(0)
    assert 'href="#f-timezone"' in summary and "EST is a fixed offset" in summary and "America/New_York" in summary
    assert re.search(r'<input id="f-timezone" name="timezone" aria-describedby="hint-timezone err-timezone" '
                     r'aria-invalid="true" value="EST"', refused.text)
    assert 'value="Bright Minds Austin"' in refused.text and 'value="+15125550100"' in refused.text
    with sessions() as session:
        assert session.scalars(select(Location)).all() == []
        assert session.scalars(select(AuditEntry).where(AuditEntry.target_type == "location")).all() == []


def test_locations_are_for_admins(staff_client):
    assert staff_client.get("/admin/locations").status_code == 403
    assert staff_client.get("/admin/locations/new").status_code == 403
    assert 'href="/admin/locations"' not in staff_client.get("/").text


def test_a_clinic_without_locations_shows_no_location_select(staff_client, sessions):
    with sessions() as session:
        add_visit(session, add_patient(session), "v1", clock_now() + timedelta(minutes=30))
    for path in ("/", "/inbox/", "/escalations/"):
        assert "location-pick" not in staff_client.get(path).text


# --- Where each user works --------------------------------------------------------------------------

def test_admin_chooses_where_a_user_works(admin_client, sessions, clinic):
    nurse_id = make_user(sessions, "nurse@clinic.test")
    page = admin_client.get("/admin/users").text
    assert "Locations nurse@clinic.test works at" in page
    post_form(admin_client, f"/admin/users/{nurse_id}/locations", {"location": [str(clinic["austin"])]},
              token_from="/admin/users")
    with sessions() as session:
        assert staff_locations(session, nurse_id) == {clinic["austin"]}
    row = re.search(rf'<tr[^>]*id="user-{nurse_id}".*?</tr>', admin_client.get("/admin/users").text, re.S).group(0)
    assert '<span class="works-at">Bright Minds Austin</span>' in row
    post_form(admin_client, f"/admin/users/{nurse_id}/locations", {}, token_from="/admin/users")
    with sessions() as session:
        assert staff_locations(session, nurse_id) == set()
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "set_staff_locations")
                                  .order_by(AuditEntry.id)).all()
    assert [e.detail["locations"] for e in entries] == ["Bright Minds Austin", "every location"]


# --- What a user limited to Austin sees ----------------------------------------------------------------

def test_a_user_at_austin_sees_austins_and_the_default_locations_visits_on_today(app, sessions, clinic):
    nurse = austin_nurse(app, sessions, clinic)
    today = nurse.get("/").text
    assert names_on(main_of(today)) == {"Ana", "Mel"}
    assert select_options(today) == ["All locations", "The Infusion Clinic", "Bright Minds Austin"]
    assert '<span class="place-name">Bright Minds Austin</span>' in today
    assert names_on(nurse.get("/?location=austin").text) == {"Ana"}
    assert names_on(nurse.get("/?location=_default").text) == {"Mel"}
    assert names_on(main_of(nurse.get("/?location=denver").text)) == {"Ana", "Mel"}  # not theirs: all of theirs


def test_a_user_at_austin_sees_austins_and_the_default_locations_inbox_items(app, sessions, clinic):
    nurse = austin_nurse(app, sessions, clinic)
    inbox = nurse.get("/inbox/").text
    assert "a question from Ana" in inbox and "a question from Mel" in inbox
    assert "a question from Dev" not in inbox
    assert nurse.get("/live.json").get_json()["inbox_waiting"] == 2


def test_a_user_at_austin_sees_austins_and_the_default_locations_escalations(app, sessions, clinic):
    nurse = austin_nurse(app, sessions, clinic)
    page = nurse.get("/escalations/").text
    assert "crisis words from Ana" in page and "crisis words from Mel" in page
    assert "crisis words from Dev" not in page
    live = nurse.get("/live.json").get_json()
    assert live["open_escalations"] == 2
    assert '<span data-live-number>2</span>' in page


def test_the_select_narrows_an_admins_view(admin_client, clinic):
    assert names_on(main_of(admin_client.get("/").text)) == {"Ana", "Dev", "Mel"}
    denver = admin_client.get("/?location=denver").text
    assert names_on(denver) == {"Dev"}
    assert re.search(r'href="/\?day=[0-9-]+&amp;location=denver" rel="next"', denver)  # the day links keep it
    assert select_options(admin_client.get("/").text) == ["All locations", "The Infusion Clinic",
                                                          "Bright Minds Austin", "Bright Minds Denver"]
    inbox = admin_client.get("/inbox/?location=denver").text
    assert "a question from Dev" in inbox and "a question from Ana" not in inbox and "a question from Mel" not in inbox
    escalations = admin_client.get("/escalations/?location=_default").text
    assert "crisis words from Mel" in escalations and "crisis words from Ana" not in escalations
    assert admin_client.get("/live.json").get_json()["open_escalations"] == 3


def test_an_inbox_items_location_is_its_patients_next_visits(admin_client, sessions, clinic):
    """A patient whose last visit was at Austin and whose next is at Denver writes to Denver's inbox."""
    now = clock_now()
    with sessions() as session:
        patient = add_patient(session, "p9", "Zed", "Moved", "+12025550199")
        before = add_visit(session, patient, "z1", now - timedelta(days=7), status="completed")
        after = add_visit(session, patient, "z2", now + timedelta(days=2))
        before.location_id, after.location_id = clinic["austin"], clinic["denver"]
        session.commit()
        add_inbound(session, patient, "moving to denver")
    assert "moving to denver" in admin_client.get("/inbox/?location=denver").text
    assert "moving to denver" not in admin_client.get("/inbox/?location=austin").text
