"""The triage model: the pure-Python scorer gives what scikit-learn gives, training is
reproducible, the shipped model.json flags clear crises and not plain texts, no text makes it raise,
and the service's import of it stays free of scikit-learn and numpy.

Training here runs on a sample of the main set (a few hundred rows) to keep the file fast."""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from reminders.triage import model

SAMPLE_EVERY = 7  # every 7th row of the main set is trained on; others are scored unseen
SEED = 3


@pytest.fixture(scope="module")
def training():
    from reminders.triage import training  # scikit-learn, from the test extra

    return training


@pytest.fixture(scope="module")
def rows(training):
    return training.read_rows()


@pytest.fixture(scope="module")
def trained(training, rows, tmp_path_factory):
    """A model trained on the sample and written as the command writes it: (Trained, path)."""
    result = training.train(rows[::SAMPLE_EVERY], seed=SEED)
    path = tmp_path_factory.mktemp("model") / "model.json"
    training.write_model(result.model, path)
    return result, path


@pytest.fixture
def broken_model(monkeypatch, tmp_path):
    """The shipped path pointed at a file that is not a model, the process's cache emptied."""
    path = tmp_path / "model.json"
    path.write_text('{"format": 1, "vectorizers": [', encoding="utf-8")
    monkeypatch.setattr(model, "MODEL_PATH", path)
    model.shipped_model.cache_clear()
    yield path
    model.shipped_model.cache_clear()


def test_the_set_is_read_without_follow_ups(training):
    raw = [json.loads(line) for path in sorted(training.MAIN_DIR.glob("*.jsonl"))
           for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    follow_ups = [row for row in raw if "escalation" in (row.get("context") or {})]
    rows = training.read_rows()
    assert len(rows) == len(raw) - len(follow_ups) > 1000
    assert {row.tier for row in rows} >= {"routine", "emergency", "suicide_risk"}
    mood_answers = {row["text"] for row in raw if (row.get("context") or {}).get("asked") == "mood"}
    assert mood_answers and mood_answers <= {row.text for row in rows}


def test_normalise():
    assert model.normalise("ＮＯOOOO Quiéro") == "noo quiero"
    assert model.normalise("sooo tired, 1000 mg") == "soo tired, 1000 mg"
    assert model.normalise("Ñandú ÇA") == "nandu ca"


def test_ngrams_are_scikit_learns(training, rows):
    pipeline = training.build_pipeline(SEED)
    chars, words = (vectorizer.build_analyzer() for _, vectorizer in pipeline.named_steps["features"].transformer_list)
    pattern = re.compile(model.WORD_PATTERN)
    odd = ["", "   ", "a", "i  m   ok\t\nreally", "😭😭", "don't-stop", "x\x00y", "ok " * 50]
    for text in [row.text for row in rows[1::10]] + odd:
        normalised = model.normalise(text)
        assert model.char_wb_ngrams(normalised, 2, 5) == chars(text), text
        assert model.word_ngrams(normalised, pattern, 1, 2) == words(text), text


def test_pure_python_risk_equals_predict_proba(trained, rows):
    result, path = trained
    scorer = model.load(path)
    unseen = [row.text for index, row in enumerate(rows) if index % SAMPLE_EVERY][:200]
    texts = unseen + ["", "😭", "zzzz qqqq", "ayuda ayuda ayuda " * 20]
    expected = result.pipeline.predict_proba(texts)[:, 1]
    for text, probability in zip(texts, expected):
        assert scorer.risk(text) == pytest.approx(probability, abs=1e-6), text
    assert len(unseen) == 200


def test_model_json_holds_what_the_runtime_needs(trained, rows):
    _result, path = trained
    data = json.loads(path.read_text(encoding="utf-8"))
    assert [v["analyzer"] for v in data["vectorizers"]] == ["char_wb", "word"]
    assert data["training"]["rows"] == len(rows[::SAMPLE_EVERY])
    assert data["training"]["seed"] == SEED and data["training"]["sklearn"]
    assert 0.0 < data["threshold"] < 1.0
    assert data["training"]["cross_validation"]["false_alarms"]["all"]["rate"] <= 0.02


def test_training_twice_with_a_seed_gives_the_same_file(training, rows, trained, tmp_path):
    _result, first = trained
    again = tmp_path / "again.json"
    training.write_model(training.train(rows[::SAMPLE_EVERY], seed=SEED).model, again)
    assert again.read_bytes() == first.read_bytes()


def test_the_threshold_keeps_routine_false_alarms_to_two_percent(training):
    routine = [i / 100 for i in range(100)]  # 0.00 .. 0.99: two may reach the threshold
    threshold = training.choose_threshold(routine)
    assert sum(score >= threshold for score in routine) == 2
    assert 0.97 < threshold <= 0.98


# At its threshold (at most 2% of routine rows flagged, out of fold) the model catches about 70 %
# of the paging rows of the set (cross-validated, 2026-12-07); decoys such as "i wrote a letter to my
# landlord" still score as high as some real crises.
@pytest.mark.parametrize("text", ["i swallowed all my pills", "no quiero vivir",
                                  "I want to kill myself", "me voy a matar esta noche"])
def test_the_shipped_model_flags_clear_crises(text):
    assert model.shipped_model() is not None, f"{model.MODEL_PATH} did not load"
    assert model.flags(text), f"{text!r}: risk {model.risk(text):.3f}"


@pytest.mark.parametrize("text", ["see you tuesday", "gracias", "ok thanks", "what time is my appointment?"])
def test_the_shipped_model_leaves_plain_texts(text):
    assert not model.flags(text), f"{text!r}: risk {model.risk(text):.3f}"


ODD_TEXTS = ["", " ", "😭😭😭", "🙂" * 3000, "a" * 20_000, "i want to die " * 1500, "\x00", "kill\x00me",
             "\ud800 lone surrogate", "\u200b\u200d", "Ⅻ ﬁ ＡＢＣ", "\n\t\r", "١٢٣ ٤٥٦", "ǅ" * 10]


@pytest.mark.parametrize("text", ODD_TEXTS, ids=range(len(ODD_TEXTS)))
def test_risk_never_raises(text):
    value = model.risk(text)
    assert 0.0 <= value <= 1.0
    assert isinstance(model.flags(text), bool)


def test_not_a_text_scores_zero():
    assert model.risk(None) == 0.0  # type: ignore[arg-type]
    assert model.risk(b"i want to die") == 0.0  # type: ignore[arg-type]


def test_a_broken_model_file_is_logged_once_and_scores_zero(broken_model, caplog):
    with caplog.at_level(logging.ERROR, logger="reminders.triage.model"):
        assert model.risk("i swallowed all my pills") == 0.0
        assert model.risk("no quiero vivir") == 0.0
        assert model.flags("no quiero vivir") is False
    errors = [r for r in caplog.records if r.name == "reminders.triage.model"]
    assert len(errors) == 1 and "could not be loaded" in errors[0].getMessage()
    assert "pills" not in caplog.text


def test_a_missing_model_file_scores_zero(broken_model):
    broken_model.unlink()
    assert model.risk("i swallowed all my pills") == 0.0


def test_the_runtime_import_does_not_load_scikit_learn_or_numpy():
    code = ("import sys\n"
            "from reminders.triage.model import risk, flags, shipped_model\n"
            "assert shipped_model() is not None\n"
            "risk('i swallowed all my pills'); flags('gracias')\n"
            "print(sorted({n.partition('.')[0] for n in sys.modules} & {'sklearn', 'numpy', 'scipy'}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_command_without_scikit_learn_says_how_to_install_it(monkeypatch, tmp_path):
    from reminders.cli import main

    import reminders.triage

    monkeypatch.delitem(sys.modules, "reminders.triage.training", raising=False)
    monkeypatch.delattr(reminders.triage, "training", raising=False)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now fails
    result = CliRunner().invoke(main, ["triage", "train", "--out", str(tmp_path / "model.json")])
    assert result.exit_code == 2
    assert 'pip install -e ".[train]"' in result.output
    assert not (tmp_path / "model.json").exists()
