"""GET /metrics: Prometheus text that Prometheus's own parser reads, guarded by METRICS_TOKEN (or
loopback only without it), with every process's counters and the database's state.

The last test runs the real `reminders web` process, and `reminders demo` and `reminders tick` as
separate commands: the messages the tick sends are counted in the tick's process, and the web's
scrape shows them (prometheus_client's multiprocess mode, the folder under REMINDERS_DATA_DIR).
The example alert rules and the Grafana dashboard under docs/ are checked to name only metrics
the service exports.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from reminders.heartbeats import BEAT, PASS, WORKER, LocalHeartbeats, ServiceWatch
from reminders.models import Escalation, OutboxMessage, ProviderHealth
from tests.conftest import APP_NOW

ROOT = Path(__file__).resolve().parent.parent
ALERT_RULES = ROOT / "docs" / "prometheus-alerts.yml"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
ELSEWHERE = {"REMOTE_ADDR": "10.1.2.3"}
METRIC_NAME = re.compile(r"\breminders_[a-z_]+\b")


def scrape_text(client, headers=None, environ=None) -> str:
    response = client.get("/metrics", headers=headers or {}, environ_base=environ or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, read with prometheus_client's own parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def total(found: dict, name: str, **labels) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls))


def outbox_row(key: str, channel: str, due_at, status: str = "planned", kind: str = "reminder") -> OutboxMessage:
    return OutboxMessage(dedupe_key=key, kind=kind, rule="maintenance_24h", channel=channel, planned_for=due_at,
                         due_at=due_at, status=status)


# ---------------------------------------------------------------- the database's state

def test_metrics_are_prometheus_text_with_due_rows_escalations_and_breakers(client, sessions):
    now = APP_NOW  # the app's clock (conftest)
    with sessions() as session:
        session.add_all([
            outbox_row("overdue-sms", "sms", now - timedelta(minutes=10)),
            outbox_row("due-email", "email", now - timedelta(minutes=1), status="queued"),
            outbox_row("later-sms", "sms", now + timedelta(hours=2)),
            outbox_row("sent-sms", "sms", now - timedelta(hours=3), status="sent"),
            Escalation(from_number="+12025550100", reason="crisis_language", text="", status="open",
                       opened_at=now - timedelta(minutes=12)),
            Escalation(from_number="+12025550100", reason="crisis_language", text="", status="acknowledged",
                       opened_at=now - timedelta(hours=1), acknowledged_at=now - timedelta(minutes=50)),
            ProviderHealth(channel="sms", consecutive_failures=5, failing_since=now - timedelta(minutes=3),
                           open_until=now + timedelta(minutes=1)),
            ProviderHealth(channel="email", consecutive_failures=0),
        ])
        session.commit()

    found = samples(scrape_text(client))

    assert value(found, "reminders_database_up") == 1
    assert value(found, "reminders_outbox_due", channel="sms") == 1
    assert value(found, "reminders_outbox_due", channel="email") == 1
    assert value(found, "reminders_outbox_overdue", channel="sms") == 1
    assert value(found, "reminders_outbox_overdue", channel="email") == 0
    assert value(found, "reminders_outbox_oldest_due_age_seconds") == 600
    assert value(found, "reminders_escalations_open") == 1
    assert value(found, "reminders_escalation_oldest_unacknowledged_age_seconds") == 12 * 60
    assert value(found, "reminders_provider_breaker_open", channel="sms") == 1
    assert value(found, "reminders_provider_breaker_open", channel="email") == 0
    assert value(found, "reminders_provider_consecutive_failures", channel="sms") == 5


def test_an_empty_clinic_reports_zeros_not_gaps(client):
    found = samples(scrape_text(client))
    for name in ("reminders_outbox_oldest_due_age_seconds", "reminders_escalations_open",
                 "reminders_escalation_oldest_unacknowledged_age_seconds"):
        assert value(found, name) == 0, name
    assert value(found, "reminders_outbox_due", channel="sms") == 0
    assert value(found, "reminders_outbox_overdue", channel="email") == 0
    assert value(found, "reminders_provider_breaker_open", channel="sms") == 0


# ---------------------------------------------------------------- who may read it

def test_with_metrics_token_only_the_bearer_of_it_is_answered(configure, settings):
    from reminders.web import create_app

    client = create_app(configure(METRICS_TOKEN="scrape-me-7f3a"), {"TESTING": True}).test_client()

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic scrape-me-7f3a"}):
        for environ in ({}, ELSEWHERE):  # the token is asked of everyone, on this machine too
            refused = client.get("/metrics", headers=headers, environ_base=environ)
            assert refused.status_code == 401
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert "reminders_" not in refused.get_data(as_text=True)
    text = scrape_text(client, headers={"Authorization": "Bearer scrape-me-7f3a"}, environ=ELSEWHERE)
    assert value(samples(text), "reminders_database_up") == 1


def test_without_metrics_token_only_this_machine_is_answered(client):
    refused = client.get("/metrics", environ_base=ELSEWHERE)
    assert refused.status_code == 403
    assert "METRICS_TOKEN" in refused.get_data(as_text=True)
    # A proxy on this machine passing on someone else's request is not this machine.
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403
    assert scrape_text(client)  # loopback
    assert scrape_text(client, environ={"REMOTE_ADDR": "::1"})


# ---------------------------------------------------------------- counted where it happens

@pytest.fixture
def busy_app(configure, settings):
    """The app after a send, a Twilio webhook and a scheduler pass (every metric has a sample)."""
    from reminders.pipeline import run_pass
    from reminders.web import create_app
    from tests.fixtures.twoway import BASE, Twilio
    from tests.helpers import book

    # No quiet hours (APP_NOW is early morning in New York): the due reminder goes at once.
    configured = configure(TWILIO_AUTH_TOKEN="webhook-token", PUBLIC_BASE_URL=BASE, QUIET_HOURS_START="00:00",
                           QUIET_HOURS_END="00:00")
    app = create_app(configured, {"TESTING": True, "CLOCK": lambda: APP_NOW})
    with app.extensions["reminders.sessions"]() as session:
        book(session, starts_at=APP_NOW + timedelta(hours=23, minutes=30), kind="maintenance")
    local = LocalHeartbeats()
    for role in (WORKER, BEAT, PASS):
        local.mark(role, APP_NOW - timedelta(seconds=20))
    app.extensions["reminders.service_watch"] = ServiceWatch("", local, cache_seconds=0)
    app.config["BEFORE"] = samples(scrape_text(app.test_client()))
    assert run_pass(configured, APP_NOW)["sent"] == 2  # the due 24 h reminder and its second text go (to the local outbox)
    answer = Twilio(app.test_client(), "webhook-token").sms("C")
    assert answer.status_code == 200
    return app


def test_sends_and_webhooks_are_counted(busy_app):
    before = busy_app.config["BEFORE"]
    after = samples(scrape_text(busy_app.test_client()))

    reminder = dict(channel="sms", kind="reminder", outcome="sent")
    # the reminder and its second text
    assert total(after, "reminders_messages_total", **reminder) == total(before, "reminders_messages_total", **reminder) + 2
    assert (total(after, "reminders_webhook_duration_seconds_count", hook="sms")
            == total(before, "reminders_webhook_duration_seconds_count", hook="sms") + 1)
    assert value(after, "reminders_beat_last_pass_timestamp_seconds") == (APP_NOW - timedelta(seconds=20)).timestamp()
    assert value(after, "reminders_heartbeat_timestamp_seconds", role="worker") is not None


def exported_names(app) -> set[str]:
    return {name for name, _ in samples(scrape_text(app.test_client()))}


def test_the_example_alert_rules_name_only_metrics_the_service_exports(busy_app):
    exported = exported_names(busy_app)
    rules = [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= {"RemindersBeatStopped", "RemindersOverdueRowsGrowing",
                                                 "RemindersEscalationUnacknowledged", "RemindersProviderBreakerOpen"}
    for rule in rules:
        named = set(METRIC_NAME.findall(rule["expr"]))
        assert named, rule["alert"]
        assert named <= exported, f"{rule['alert']}: {sorted(named - exported)} not exported"
        assert rule["annotations"]["summary"] and rule["labels"]["severity"]
    unacknowledged = next(r for r in rules if r["alert"] == "RemindersEscalationUnacknowledged")
    assert "600" in unacknowledged["expr"]  # older than 10 minutes


def test_the_grafana_dashboard_charts_only_metrics_the_service_exports(busy_app):
    exported = exported_names(busy_app)
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(expressions) >= 8
    for expr in expressions:
        named = set(METRIC_NAME.findall(expr))
        assert named and named <= exported, f"{expr}: {sorted(named - exported)} not exported"


# ---------------------------------------------------------------- from outside, real processes

@pytest.mark.postgres
@pytest.mark.processes
def test_the_web_process_shows_the_counts_of_a_demo_and_a_tick_run_as_other_processes(tmp_path):
    from tests.fakes.smtp_server import FakeSMTP, free_port
    from tests.fakes.twilio_server import FakeTwilio
    from tests.processes import (
        HOST, START_WAIT, WEB_COMMAND, Process, clinic_environment, command, postgres_schema, run_cli, signed_text,
        wait_for,
    )

    token = "prometheus-scrape-token"
    with postgres_schema() as database_url, FakeTwilio() as twilio, FakeSMTP() as smtp:
        port = free_port()
        web_url = f"http://{HOST}:{port}"
        env = clinic_environment(tmp_path, database_url, "", web_url, twilio, smtp)  # no Redis: the tick sends itself
        env["METRICS_TOKEN"] = token
        run_cli(env, "init")
        web = Process("web", command(WEB_COMMAND, host=HOST, port=port), env, tmp_path / "web.log").start()
        try:
            def scrape():
                response = requests.get(web_url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
                assert response.status_code == 200, response.text
                return samples(response.text)

            def up():
                if not web.running:
                    raise AssertionError(f"the web process exited:\n{web.log()[-3000:]}")
                try:
                    return requests.get(web_url + "/healthz", timeout=5).status_code == 200
                except requests.RequestException:
                    return False

            wait_for(up, START_WAIT, "the web process to answer /healthz")
            assert requests.get(web_url + "/metrics", timeout=30).status_code == 401
            before = scrape()
            assert total(before, "reminders_messages_total") == 0
            assert value(before, "reminders_escalations_open") == 0

            run_cli(env, "demo")
            # A crisis text: the web process opens an escalation and alerts on-call itself.
            signed_text(SimpleNamespace(twilio=twilio, env=env, web_url=web_url), "i want to end my life",
                        "+12025550188")
            alerted = scrape()
            assert value(alerted, "reminders_escalations_open") == 1
            assert value(alerted, "reminders_escalation_oldest_unacknowledged_age_seconds") >= 0
            assert total(alerted, "reminders_webhook_duration_seconds_count", hook="sms") == 1
            assert total(alerted, "reminders_messages_total", kind="alert", outcome="sent") >= 1
            web_counted = total(alerted, "reminders_messages_total")

            summary = json.loads(run_cli(env, "tick").strip().splitlines()[-1])
            assert summary["sent"] > 0
            after = scrape()
            # What the tick sent was counted in the tick's process, and the web process shows it.
            tick_counted = total(after, "reminders_messages_total") - web_counted
            assert tick_counted >= summary["sent"]
            assert total(after, "reminders_messages_total", outcome="sent") >= summary["sent"]
            assert total(after, "reminders_messages_total", kind="reminder", outcome="sent") > 0
            assert value(after, "reminders_database_up") == 1
            assert any(path.name.startswith("counter_") for path in (tmp_path / "data" / "metrics").iterdir())
        except BaseException:
            print(web.log()[-5000:])
            raise
        finally:
            web.stop()


def test_compose_gives_web_and_worker_one_shared_metrics_folder():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    folders = {services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"] for name in ("web", "worker")}
    assert len(folders) == 1
    folder = folders.pop()
    for name in ("web", "worker"):
        mounts = [volume.split(":") for volume in services[name]["volumes"]]
        assert any(folder == target or folder.startswith(target.rstrip("/") + "/") for _, target, *_ in mounts), name
    assert {tuple(v.split(":")[:2]) for v in services["web"]["volumes"]} & {
        tuple(v.split(":")[:2]) for v in services["worker"]["volumes"]}
