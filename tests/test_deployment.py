"""docker-compose.yml cannot run here (no Docker engine); check that what it names exists."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml
from click.testing import CliRunner

from reminders.cli import main

ROOT = Path(__file__).resolve().parent.parent


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_redis_postgres_web_worker_and_beat():
    services = compose()["services"]
    assert {"redis", "postgres", "web", "worker", "beat"} <= set(services)
    assert services["worker"]["command"][:4] == ["celery", "-A", "worker", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "worker", "beat"]
    assert services["web"]["command"][:2] == ["reminders", "web"]


def test_the_app_services_point_at_the_compose_database_and_broker():
    for name in ("web", "worker", "beat", "hl7"):
        env = compose()["services"][name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")


def test_the_commands_compose_uses_exist():
    runner = CliRunner()
    assert runner.invoke(main, ["web", "--help"]).exit_code == 0
    import worker

    assert worker.app.main == "reminders"
    assert "reminders.tasks.run_pass" in worker.app.conf.beat_schedule["pass-every-minute"]["task"]


def test_the_image_installs_the_package_and_ships_the_templates():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY templates ./templates" in dockerfile and "pip install" in dockerfile
    assert "TEMPLATES_DIR=/app/templates" in dockerfile  # the installed package lives elsewhere


def test_templates_are_found_from_the_working_directory_when_the_package_is_installed(tmp_path, monkeypatch):
    from reminders import config

    (tmp_path / "templates").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path / "site-packages")
    assert config.default_templates_dir() == tmp_path / "templates"


def _placeholders(argv: list[str]) -> tuple[str, ...]:
    """The command with each host-chosen value (host, port, concurrency, schedule file) as {name}."""
    out = list(argv)
    for i, part in enumerate(argv[:-1]):
        if part.startswith("--") and part[2:] in ("host", "port", "concurrency", "schedule"):
            out[i + 1] = "{" + part[2:] + "}"
    return tuple(out)


def test_compose_runs_the_same_web_worker_and_beat_commands_as_the_process_test():
    from tests.processes import BEAT_COMMAND, REDIS_COMMAND, WEB_COMMAND, WORKER_COMMAND

    services = compose()["services"]
    assert _placeholders(services["web"]["command"]) == WEB_COMMAND
    assert _placeholders(services["worker"]["command"]) == WORKER_COMMAND
    assert _placeholders(services["beat"]["command"]) == BEAT_COMMAND
    # Every option compose gives Redis (append-only) is one the process test's Redis runs with.
    redis = services["redis"]["command"]
    assert redis[0] == REDIS_COMMAND[0]
    options = dict(zip(REDIS_COMMAND[1::2], REDIS_COMMAND[2::2]))
    assert dict(zip(redis[1::2], redis[2::2])).items() <= options.items()


def test_the_worker_is_given_time_to_finish_the_batch_in_hand_when_stopped():
    from reminders.sending import BATCH_SECONDS

    grace = compose()["services"]["worker"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > BATCH_SECONDS


def test_compose_runs_the_hl7_listener_the_cli_has_as_the_listener_test_runs_it():
    from reminders.config import Settings
    from tests.test_hl7_listener import HL7_COMMAND

    service = compose()["services"]["hl7"]
    command = service["command"]
    assert _placeholders(command) == HL7_COMMAND
    result = CliRunner().invoke(main, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "--port" in result.output and "--host" in result.output
    # Listening on every address inside the container, on the port the settings default to, published.
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert int(port) == Settings.model_fields["hl7_port"].default
    assert f"{port}:{port}" in service["ports"]


def test_every_setting_has_a_group_and_a_description():
    from reminders.config import SETTING_GROUPS, Settings

    placed = [name for names in SETTING_GROUPS.values() for name in names]
    unplaced = sorted(set(Settings.model_fields) - set(placed))
    assert not unplaced, f"settings in no group of SETTING_GROUPS (reminders/config.py): {unplaced}"
    twice = sorted({name for name in placed if placed.count(name) > 1})
    assert not twice, f"settings in more than one group: {twice}"
    assert not set(placed) - set(Settings.model_fields), "SETTING_GROUPS names a setting that does not exist"
    undescribed = sorted(name for name, field in Settings.model_fields.items() if not (field.description or "").strip())
    assert not undescribed, f"settings without description= (it is their line in docs/configuration.md): {undescribed}"


def settings_reference():
    """scripts/settings_reference.py, the writer of docs/configuration.md."""
    spec = importlib.util.spec_from_file_location("settings_reference", ROOT / "scripts" / "settings_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_settings_reference_is_what_the_model_says():
    from reminders.config import Settings

    writer = settings_reference()
    page = writer.PAGE.read_text(encoding="utf-8")
    assert page == writer.reference(), "docs/configuration.md is stale: run python scripts/settings_reference.py"
    missing = [name for name in Settings.model_fields if f"| `{writer.environment_variable(name)}` |" not in page]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"
