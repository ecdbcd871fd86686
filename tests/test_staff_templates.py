"""Template editing (admins): refusal with the line, the sandbox, live preview, versions and restore."""
from __future__ import annotations

import re

from sqlalchemy import select

from reminders.models import AuditEntry, TemplateVersion
from reminders.rendering import TemplateStore, render, sample_context
from tests.fixtures.staff import csrf_token, post_form

SMS = "induction_24h.sms.j2"
EDIT = f"/admin/templates/{SMS}"


def versions(sessions, name: str = SMS) -> list[TemplateVersion]:
    with sessions() as session:
        return session.scalars(select(TemplateVersion).where(TemplateVersion.name == name)
                               .order_by(TemplateVersion.id)).all()


def save(client, source: str, name: str = SMS):
    return post_form(client, f"/admin/templates/{name}", {"source": source}, token_from=f"/admin/templates/{name}")


def preview(client, source: str, name: str = SMS):
    token = csrf_token(client, f"/admin/templates/{name}")
    return client.post(f"/admin/templates/{name}/preview", json={"source": source}, headers={"X-CSRFToken": token})


def sent_text(settings, sessions, name: str = SMS) -> str:
    with sessions() as session:
        return render(TemplateStore(settings.templates_dir, session), name, sample_context(settings))


def test_every_template_is_listed_by_rule_and_channel(admin_client, settings):
    page = admin_client.get("/admin/templates/").text
    for name in TemplateStore(settings.templates_dir).all_names():  # es/ too
        assert f'href="/admin/templates/{name}"' in page, name
    for rule in ("first_induction_72h", "maintenance_7d", "checkin_weekly_1", "rebook_nudge"):
        assert rule in page
    assert "Welcome text" in page and "Email HTML" in page and "Subject" in page and "SMS" in page


def test_editor_shows_the_source_a_preview_and_the_sms_meter(admin_client, settings):
    page = admin_client.get(EDIT).text
    assert "infusion {{ visit.number }} of {{ visit.series_length }}" in page
    assert "infusion 3 of 6 is Tuesday, March 3 at 9:30 AM" in page
    # (the meter counts the whole message; past two segments it goes as two texts: tests/test_text_parts.py)
    assert 'id="sms-meter"' in page and re.search(r"\d+ characters · GSM-7 · [123] segments?", page)
    assert admin_client.get("/admin/templates/../secret_key").status_code == 404
    assert admin_client.get("/admin/templates/nope.sms.j2").status_code == 404


def test_a_good_save_adds_a_version_that_is_sent(admin_client, settings, sessions):
    response = save(admin_client, "Hi {{ patient.first_name }}, see you {{ visit.date }}.\r\nReply C to confirm.")
    assert response.status_code == 302
    [version] = versions(sessions)
    assert version.active and version.created_by == "admin@clinic.test"
    assert version.source == "Hi {{ patient.first_name }}, see you {{ visit.date }}.\nReply C to confirm."
    assert sent_text(settings, sessions) == "Hi Alex, see you Tuesday, March 3.\nReply C to confirm."
    with sessions() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "save_template"))
        assert entry.target_id == SMS and entry.actor == "admin@clinic.test"
    unchanged = save(admin_client, version.source)
    assert unchanged.status_code == 302 and len(versions(sessions)) == 1


def test_a_template_that_fails_is_refused_with_its_line(admin_client, sessions):
    response = save(admin_client, "Hi {{ patient.first_name }},\nyour visit is {{ visit.dat }}.")
    assert response.status_code == 422
    assert "Line 2: `visit.dat` is not something this message can use. Did you mean `visit.date`?" in response.text
    assert "your visit is {{ visit.dat }}." in response.text  # what they typed is kept
    syntax = save(admin_client, "Hi\n\n{% if visit.is_first %}first")
    assert syntax.status_code == 422 and "Line 3: a `{% if %}` is never closed" in syntax.text
    unknown = save(admin_client, "Hi {{ patient.first_name }}\n{{ patient.ssn }}")
    assert unknown.status_code == 422 and "Line 2: `patient.ssn` is not something" in unknown.text
    assert save(admin_client, "   \n").status_code == 422
    assert versions(sessions) == []


def test_a_typo_in_a_branch_the_sample_skips_is_still_refused(admin_client, sessions):
    source = "Hi {{ patient.first_name }}\n{% if visit.kind == 'maintenance' %}\n{{ visit.nmber }}\n{% endif %}"
    response = save(admin_client, source)
    assert response.status_code == 422 and "Line 3:" in response.text
    assert versions(sessions) == []


def test_the_sandbox_holds(admin_client, sessions):
    for source in (
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{% if false %}{{ joiner.__init__ }}{% endif %}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lipsum.__globals__['os'] }}",
    ):
        response = save(admin_client, source)
        assert response.status_code == 422, source
        assert "Line 1:" in response.text, source
        result = preview(admin_client, source).get_json()
        assert result["ok"] is False and result["line"] == 1, source
        assert "<class" not in response.text and "object" not in result.get("text", "")
    assert versions(sessions) == []


def test_preview_returns_the_text_and_its_sms_length(admin_client):
    response = preview(admin_client, "Hi {{ patient.first_name }} \u2019 {{ clinic.crisis_line }}")
    assert response.status_code == 200
    data = response.get_json()
    assert data["ok"] is True and data["part"] == "sms"
    assert data["text"] == "Hi Alex ' 988"  # the curly quote is swapped as it would be at send time
    assert data["sms"] == {"encoding": "GSM-7", "units": 13, "segments": 1, "per_segment": 160, "characters": 13,
                           "allowed": 2}
    emoji = preview(admin_client, "Hi {{ patient.first_name }} 🙂 " + "x" * 70).get_json()
    assert emoji["sms"]["encoding"] == "UCS-2" and emoji["sms"]["segments"] == 2 and emoji["sms"]["units"] == 81
    assert emoji["sms"]["allowed"] == 5  # the UCS-2 segments that hold as much as two GSM-7 ones
    # Accents stay in the preview as they do at send time, and are counted the same (UCS-2).
    accents = preview(admin_client, "Hola, su infusión es el {{ visit.date }}. Llámenos.").get_json()
    assert "infusión" in accents["text"] and "Llámenos" in accents["text"]
    assert accents["sms"]["encoding"] == "UCS-2" and accents["sms"]["units"] == len(accents["text"])
    broken = preview(admin_client, "ok\n{{ visit.nope }}")
    assert broken.status_code == 422
    # In plain words, naming the line and the variable meant (not Jinja's "'dict object' has no attribute").
    told = "`visit.nope` is not something this message can use. Did you mean `visit.number`?"
    assert broken.get_json() == {"ok": False, "line": 2, "reason": told, "message": f"Line 2: {told}"}
    html = preview(admin_client, "<p>{{ patient.first_name }} <b>{{ '<i>' }}</b></p>",
                   name="maintenance_7d.email.html.j2").get_json()
    assert html["text"].strip() == "<p>Alex <b>&lt;i&gt;</b></p>" and html["sms"] is None


def test_welcome_text_is_checked_without_a_visit(admin_client, sessions):
    response = save(admin_client, "Welcome {{ patient.first_name }}, see you {{ visit.date }}", name="welcome.sms.j2")
    assert response.status_code == 422
    assert save(admin_client, "Welcome to {{ clinic.name }}. Reply STOP to opt out.", name="welcome.sms.j2").status_code == 302


def test_every_default_template_passes_the_checks_unchanged(settings, sessions):
    from reminders.web.staff.template_checks import check

    with sessions() as session:
        store = TemplateStore(settings.templates_dir, session)
        for name in store.all_names():
            assert check(store, settings, name, store.default_source(name)) is None, name


def test_a_message_sent_without_a_visit_must_not_need_one(admin_client, settings):
    """The default copes with no visit, so an edit must too; one that always has a visit may use it."""
    names = TemplateStore(settings.templates_dir).default_names()
    if "reply_reschedule.sms.j2" in names:
        refused = save(admin_client, "We will call you about {{ visit.date }}.", name="reply_reschedule.sms.j2")
        assert refused.status_code == 422 and "Line 1:" in refused.text
        kept = save(admin_client, "We will call you{% if visit %} about {{ visit.date }}{% endif %}.",
                    name="reply_reschedule.sms.j2")
        assert kept.status_code == 302
    if "reply_confirmed.sms.j2" in names:
        assert save(admin_client, "Confirmed: {{ visit.date }} at {{ visit.time }}.",
                    name="reply_confirmed.sms.j2").status_code == 302


def test_versions_restore_and_reset(admin_client, settings, sessions):
    default = sent_text(settings, sessions)
    save(admin_client, "Version one for {{ patient.first_name }}")
    save(admin_client, "Version two for {{ patient.first_name }}")
    first, second = versions(sessions)
    assert sent_text(settings, sessions) == "Version two for Alex"
    page = admin_client.get(EDIT).text
    assert f"Version {first.id}" in page and f"Version {second.id}" in page and "in use" in page

    response = post_form(admin_client, f"{EDIT}/versions/{first.id}/restore", token_from=EDIT)
    assert response.status_code == 302
    *_, restored = versions(sessions)
    assert restored.id not in (first.id, second.id) and restored.source == first.source and restored.active
    assert sent_text(settings, sessions) == "Version one for Alex"

    post_form(admin_client, f"{EDIT}/reset", token_from=EDIT)
    assert [v.active for v in versions(sessions)] == [False, False, False]
    assert sent_text(settings, sessions) == default
    assert "No edited versions" not in admin_client.get(EDIT).text  # the old ones stay listed
    post_form(admin_client, f"{EDIT}/versions/{second.id}/restore", token_from=EDIT)
    assert sent_text(settings, sessions) == "Version two for Alex"
    assert post_form(admin_client, f"/admin/templates/welcome.sms.j2/versions/{second.id}/restore",
                     token_from=EDIT).status_code == 404
    with sessions() as session:
        done = session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "template")).all()
    assert done.count("restore_template") == 2 and done.count("reset_template") == 1


def test_a_spanish_template_is_edited_with_a_spanish_preview(admin_client, settings, sessions):
    name = "es/induction_24h.sms.j2"
    page = admin_client.get(f"/admin/templates/{name}").text
    assert "la infusión {{ visit.number }}" in page or "la infusi&oacute;n" in page or "infusi" in page
    assert "martes 3 de marzo a las 9:30 a. m." in page  # the sample in Spanish
    result = preview(admin_client, "Hola {{ patient.first_name }}: {{ visit.date }} a {{ visit.time }}", name=name)
    assert result.get_json()["text"] == "Hola Alex: martes 3 de marzo a las 9:30 a. m."
    assert save(admin_client, "Hola {{ patient.first_name }}, cita el {{ visit.date }}.", name=name).status_code == 302
    assert versions(sessions, name)[0].active
    with sessions() as session:
        text = render(TemplateStore(settings.templates_dir, session), name, sample_context(settings, "es"))
    assert text == "Hola Alex, cita el martes 3 de marzo."
    assert admin_client.get("/admin/templates/es/nope.sms.j2").status_code == 404
    assert admin_client.get("/admin/templates/es/../secret_key").status_code == 404
