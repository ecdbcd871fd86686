"""`reminders triage train`: the triage model trained from the labelled replies."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from reminders.cli.common import main


@main.group()
def triage() -> None:
    """The triage model, the statistical second opinion beside the phrase rules."""


@triage.command("train")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the folds and the model.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the model; default: reminders/triage/model.json, the one shipped.")
def triage_train(seed: int, out: Path | None) -> None:
    """Train on tests/data/triage_eval/main/*.jsonl, print the cross-validated figures, write model.json.

    Needs scikit-learn (pip install -e ".[train]"); the service itself scores model.json without it."""
    try:
        from reminders.triage import training
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in ("sklearn", "numpy", "scipy"):
            raise
        click.echo(f'error: training needs scikit-learn ({exc.name} is missing): pip install -e ".[train]"', err=True)
        sys.exit(2)
    from reminders.triage.model import MODEL_PATH

    rows = training.read_rows()
    if not rows:
        click.echo(f"error: no rows in {training.MAIN_DIR}/*.jsonl", err=True)
        sys.exit(2)
    trained = training.train(rows, seed=seed)
    for line in training.report_lines(trained.figures):
        click.echo(line)
    path = out or MODEL_PATH
    size = training.write_model(trained.model, path)
    click.echo(f"wrote {path} ({size:,} bytes; {len(rows)} rows, seed {seed})")
