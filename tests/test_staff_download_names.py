"""Downloads named after a patient's record id: whatever characters the id holds (accents, another
script, a newline, a Unicode line separator), the export is served, its body is whole, and the
Content-Disposition header is safe (no control characters) with an ASCII name and an RFC 5987 one."""
from __future__ import annotations

import csv
import io
import unicodedata
from datetime import timedelta

import pypdfium2 as pdfium
import pytest
from werkzeug.http import parse_options_header

from reminders.models import Patient
from reminders.web.staff.downloads import attachment_name, content_disposition, safe_name
from tests.conftest import clock_now
from tests.fixtures.staff import add_checkin, add_patient, add_visit
from tests.test_staff_measures import seed_course

ODD_IDS = ("Nguyễn-7", "患者-12", "line\nbreak-3", "line\u2028sep-4", "cr\r\nlf-5", 'quote"semi;colon\\back/slash-6')


def header_is_safe(value: str) -> None:
    assert value.isascii(), repr(value)
    assert not any(unicodedata.category(c).startswith("C") for c in value), repr(value)
    assert "\n" not in value and "\r" not in value and "\u2028" not in value and "\u2029" not in value


def disposition(response) -> tuple[str, str]:
    """(what a browser would save the file as, the plain ASCII fallback)."""
    value = response.headers["Content-Disposition"]
    header_is_safe(value)
    kind, options = parse_options_header(value)
    assert kind == "attachment"
    # Werkzeug decodes filename*=UTF-8''... into "filename", over the fallback.
    fallback = parse_options_header(value.split("; filename*=")[0])[1]["filename"]
    return options["filename"], fallback


def with_odd_id(sessions, patient_id: int, external_id: str) -> None:
    """Ids as they may already be stored (imported before validation, or by another system)."""
    with sessions() as session:
        session.get(Patient, patient_id).external_id = external_id
        session.commit()


@pytest.mark.parametrize("external_id", ODD_IDS)
def test_the_checkins_csv_downloads_for_any_record_id(staff_client, sessions, external_id):
    now = clock_now()
    with sessions() as session:
        patient = add_patient(session)
        visit = add_visit(session, patient, "v1", now - timedelta(days=3), status="completed")
        add_checkin(session, patient, now - timedelta(days=2), 4, "tired", visit)
        add_checkin(session, patient, now - timedelta(days=1), 8, "fine")
    with_odd_id(sessions, patient.id, external_id)
    response = staff_client.get(f"/patients/{patient.id}/checkins.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert [r["score"] for r in rows] == ["4", "8"]
    assert {r["patient_external_id"] for r in rows} == {external_id}
    name, fallback = disposition(response)
    assert name.startswith("checkins-") and name.endswith(".csv") and fallback.endswith(".csv")
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("external_id", ODD_IDS)
def test_the_questionnaires_csv_downloads_for_any_record_id(staff_client, settings, sessions, external_id):
    with sessions() as session:
        patient_id = seed_course(session, settings)["patient"]
    with_odd_id(sessions, patient_id, external_id)
    response = staff_client.get(f"/patients/{patient_id}/measures.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert len(rows) == 8 and {r["patient_external_id"] for r in rows} == {external_id}
    name, fallback = disposition(response)
    assert name.startswith("questionnaires-") and name.endswith(".csv") and fallback.endswith(".csv")
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("external_id", ODD_IDS)
def test_the_pdf_report_downloads_for_any_record_id(staff_client, settings, sessions, external_id):
    with sessions() as session:
        patient_id = seed_course(session, settings)["patient"]
    with_odd_id(sessions, patient_id, external_id)
    response = staff_client.get(f"/patients/{patient_id}/report.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    document = pdfium.PdfDocument(response.data)
    text = document[0].get_textpage().get_text_range()
    assert "Maya Lopez" in text and "Record ID:" in text
    name, fallback = disposition(response)
    assert name.startswith("measures-report-") and name.endswith(".pdf") and fallback.endswith(".pdf")
    assert response.headers["Cache-Control"] == "no-store"


def test_a_plain_record_id_keeps_its_plain_file_name(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session, "p-42")
    response = staff_client.get(f"/patients/{patient.id}/checkins.csv")
    assert response.headers["Content-Disposition"] == 'attachment; filename="checkins-p-42.csv"'


def test_the_names_a_browser_sees():
    assert safe_name("checkins-Nguyễn-7.csv") == "checkins-Nguyễn-7.csv"
    assert safe_name("checkins-line\nbreak\u2028x.csv") == "checkins-line_break_x.csv"
    assert safe_name('a"b\\c/d\x00e\u200bf.csv') == "a_b_c_d_e_f.csv"
    assert attachment_name("checkins-p1.csv") == {"filename": "checkins-p1.csv"}
    assert attachment_name("checkins-Nguyễn-7.csv") == {
        "filename": "checkins-Nguyen-7.csv", "filename*": "UTF-8''checkins-Nguy%E1%BB%85n-7.csv"}
    assert attachment_name("checkins-患者-12.csv") == {
        "filename": "checkins-_-12.csv", "filename*": "UTF-8''checkins-%E6%82%A3%E8%80%85-12.csv"}
    assert attachment_name("report-a\r\nb.pdf")["filename"] == "report-a_b.pdf"
    assert attachment_name("a__b.csv") == {"filename": "a__b.csv"}  # the id's own underscores stay
    assert attachment_name("ｐ／１.csv")["filename"] == "p_1.csv"  # full-width letters, a full-width slash
    assert content_disposition("checkins-Nguyễn-7.csv") == (
        "attachment; filename=\"checkins-Nguyen-7.csv\"; filename*=UTF-8''checkins-Nguy%E1%BB%85n-7.csv")
    assert content_disposition("a;b c.csv") == 'attachment; filename="a;b c.csv"'
