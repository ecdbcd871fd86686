"""Training the triage model (`reminders triage train`): scikit-learn, only here.

The rows are tests/data/triage_eval/main/*.jsonl (whatever files are there: the set grows), never
heldout/, which estimates how the readers do on texts nobody tuned on. The target is "someone is
paged": any tier but routine. Follow-ups written for an open escalation (context.escalation) are
left out, as they mean something only after the text before them; a reply to a mood question and
a text from an unknown number are read as their plain text.

Five-fold stratified cross-validation gives every row a score from a model that did not see it;
the threshold is then the lowest that keeps routine rows at or above it to at most 2%, and the
recall figures are read at that threshold. The model shipped is then fitted on every row, its
weights rounded, and exported for reminders/triage/model.py to score without scikit-learn.

This module imports scikit-learn at its top: import it only on the way to training.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline

from reminders.triage.model import FORMAT, WORD_PATTERN, idf, normalise

MAIN_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "triage_eval" / "main"
ROUTINE = "routine"
FOLDS = 5
MAX_FALSE_ALARMS = 0.02  # of routine rows, out of fold, at or above the threshold
CHAR_NGRAMS = (2, 5)
WORD_NGRAMS = (1, 2)
# The vocabulary: terms in at least 2 rows, the most frequent first; about 30,000 in all keeps
# model.json small enough to read at start-up in a fraction of a second.
MIN_DF = 2
MAX_CHAR_TERMS = 25_000
MAX_WORD_TERMS = 5_000
# Weak regularisation: over C in 1, 3, 10, 30 (5-fold, main set of 2,103 rows) 10 gave the best
# ranking (AUC .950 against .942 for 1) and recall at 2% false alarms (55% against 49%).
C = 10.0
DIGITS = 5  # significant digits of an exported weight


@dataclass(frozen=True)
class Row:
    text: str
    tier: str
    language: str
    category: str

    @property
    def pages(self) -> bool:
        """The target: a tier that pages someone."""
        return self.tier != ROUTINE


@dataclass(frozen=True)
class Trained:
    pipeline: Pipeline
    model: dict[str, Any]  # the contents of model.json
    figures: dict[str, Any]


def read_rows(folder: Path = MAIN_DIR) -> list[Row]:
    """Every usable row of the folder's *.jsonl files, files in name order (so a seed gives the
    same model); rows that follow an open escalation are left out."""
    rows = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name}:{number}: not JSON ({exc})") from None
            if "escalation" in (data.get("context") or {}):
                continue
            rows.append(Row(data["text"], data["tier"], data.get("language", "?"), data.get("category", "")))
    return rows


def build_pipeline(seed: int) -> Pipeline:
    """Character n-grams inside words (misspellings, run-together words, Spanish and English
    stems) beside word unigrams and bigrams ("want to", "no quiero"), each TF-IDF with l2 norm;
    a balanced logistic regression, as routine and paging rows are not equally many."""
    common = dict(preprocessor=normalise, lowercase=False, sublinear_tf=True, min_df=MIN_DF,
                  dtype=np.float64)
    features = FeatureUnion([
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, max_features=MAX_CHAR_TERMS,
                                  **common)),
        ("words", TfidfVectorizer(analyzer="word", token_pattern=WORD_PATTERN, ngram_range=WORD_NGRAMS,
                                  max_features=MAX_WORD_TERMS, **common)),
    ])
    classifier = LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=seed)
    return Pipeline([("features", features), ("classifier", classifier)])


def out_of_fold_scores(rows: Sequence[Row], seed: int, folds: int = FOLDS) -> list[float]:
    """Each row's risk from a model fitted on the other folds; folds stratified by tier, so that
    every tier (not only "pages or not") is spread evenly."""
    texts = [row.text for row in rows]
    targets = np.array([row.pages for row in rows])
    scores = np.zeros(len(rows))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(texts, [row.tier for row in rows]):
        pipeline = build_pipeline(seed).fit([texts[i] for i in train], targets[train])
        scores[test] = pipeline.predict_proba([texts[i] for i in test])[:, 1]
    return scores.tolist()


def choose_threshold(routine_scores: Iterable[float], max_false_alarms: float = MAX_FALSE_ALARMS) -> float:
    """The lowest threshold with at most max_false_alarms of routine scores at or above it: just
    above the highest routine score that must stay below."""
    ranked = sorted(routine_scores, reverse=True)
    if not ranked:
        raise ValueError("no routine rows to choose a threshold from")
    allowed = math.floor(max_false_alarms * len(ranked))
    if allowed >= len(ranked):
        return 0.0
    return math.nextafter(ranked[allowed], math.inf)


def _rate(hits: int, total: int) -> dict[str, Any]:
    return {"hits": hits, "rows": total, "rate": round(hits / total, 4) if total else None}


def figures(rows: Sequence[Row], scores: Sequence[float], threshold: float, folds: int = FOLDS) -> dict[str, Any]:
    """Recall (paging rows flagged) overall, by tier and by language, and false alarms (routine
    rows flagged), overall and by language, at the threshold."""
    flagged = [score >= threshold for score in scores]
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row, hit in zip(rows, flagged):
        kind = "recall" if row.pages else "false_alarms"
        for key in ((kind, "all"), (kind, f"tier:{row.tier}"), (kind, f"language:{row.language}")):
            tally[key][0] += hit
            tally[key][1] += 1
    result: dict[str, Any] = {"folds": folds, "threshold": threshold, "recall": {}, "false_alarms": {}}
    for (kind, key), (hits, total) in sorted(tally.items()):
        if kind == "false_alarms" and key.startswith("tier:"):
            continue  # the same as "all": routine is the only tier counted there
        result[kind][key] = _rate(hits, total)
    return result


def _rounded(value: float) -> float:
    return float(f"{value:.{DIGITS}g}")


def _terms(vectorizer: TfidfVectorizer, coefficients: np.ndarray, matrix) -> dict[str, list]:
    """term -> [idf * coefficient rounded, df]. The document frequencies are read back from the
    training matrix, and the idf they give is checked against the fitted one."""
    matrix = matrix.tocsr()
    df = np.bincount(matrix.indices, minlength=matrix.shape[1])
    documents = matrix.shape[0]
    names = vectorizer.get_feature_names_out()
    terms = {}
    for column, term in enumerate(names):
        weight = vectorizer.idf_[column] * coefficients[column]
        if not math.isclose(idf(documents, int(df[column])), vectorizer.idf_[column], rel_tol=1e-12):
            raise RuntimeError(f"the df of {term!r} does not give back its idf")
        terms[str(term)] = [_rounded(weight), int(df[column])]
    return dict(sorted(terms.items()))


def round_and_export(pipeline: Pipeline, texts: Sequence[str], threshold: float,
                     training: dict[str, Any]) -> dict[str, Any]:
    """model.json's contents. The folded weights are rounded, and the pipeline's coefficients are
    set to exactly what the rounded weights give, so that the pipeline and the JSON are one model
    (scikit-learn's predict_proba and model.risk agree to rounding error, not to 5 digits)."""
    union: FeatureUnion = pipeline.named_steps["features"]
    classifier: LogisticRegression = pipeline.named_steps["classifier"]
    coefficients = classifier.coef_[0].copy()
    vectorizers, start = [], 0
    for name, vectorizer in union.transformer_list:
        size = len(vectorizer.vocabulary_)
        part = coefficients[start:start + size]
        terms = _terms(vectorizer, part, vectorizer.transform(texts))
        names = vectorizer.get_feature_names_out()
        part[:] = [terms[str(term)][0] / vectorizer.idf_[column] for column, term in enumerate(names)]
        vectorizers.append({
            "name": name, "analyzer": vectorizer.analyzer, "ngram_range": list(vectorizer.ngram_range),
            **({"token_pattern": vectorizer.token_pattern} if vectorizer.analyzer == "word" else {}),
            "sublinear_tf": vectorizer.sublinear_tf, "smooth_idf": vectorizer.smooth_idf,
            "norm": vectorizer.norm, "documents": len(texts), "terms": terms,
        })
        start += size
    classifier.coef_[0] = coefficients
    return {
        "format": FORMAT,
        "target": "tier != routine (someone is paged)",
        "normalise": "reminders.triage.model.normalise: NFKC, casefold, accents stripped, "
                     "a letter repeated 3+ times cut to 2",
        "vectorizers": vectorizers,
        "intercept": float(classifier.intercept_[0]),
        "threshold": threshold,
        "training": training,
    }


def train(rows: Sequence[Row], seed: int = 0, folds: int = FOLDS) -> Trained:
    """Cross-validate, choose the threshold, fit on every row and export."""
    rows = list(rows)
    scores = out_of_fold_scores(rows, seed, folds)
    threshold = choose_threshold(score for row, score in zip(rows, scores) if not row.pages)
    measured = figures(rows, scores, threshold, folds)
    texts = [row.text for row in rows]
    pipeline = build_pipeline(seed).fit(texts, [row.pages for row in rows])
    training = {
        "rows": len(rows), "paging_rows": sum(row.pages for row in rows), "seed": seed,
        "sklearn": sklearn.__version__, "C": C, "min_df": MIN_DF,
        "max_features": {"chars": MAX_CHAR_TERMS, "words": MAX_WORD_TERMS},
        "max_false_alarms": MAX_FALSE_ALARMS, "cross_validation": measured,
    }
    return Trained(pipeline, round_and_export(pipeline, texts, threshold, training), measured)


def write_model(model: dict[str, Any], path: Path) -> int:
    """Write model.json (keys sorted, one line: the same model gives the same bytes); its size."""
    text = json.dumps(model, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
    data = text.encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)  # a reader in another process never sees half a file
    return len(data)


def report_lines(measured: dict[str, Any]) -> list[str]:
    """The cross-validated figures as the command prints them."""
    def line(label: str, figure: dict[str, Any]) -> str:
        rate = "-" if figure["rate"] is None else f"{figure['rate']:.1%}"
        return f"  {label:<24} {rate:>6}  ({figure['hits']}/{figure['rows']})"

    recall, alarms = measured["recall"], measured["false_alarms"]
    lines = [f"{measured['folds']}-fold cross-validation, out of fold, threshold {measured['threshold']:.4f}",
             "recall (paging rows flagged):", line("overall", recall["all"])]
    lines += [line(key, value) for key, value in recall.items() if key != "all"]
    lines += ["false alarms (routine rows flagged):", line("overall", alarms["all"])]
    lines += [line(key, value) for key, value in alarms.items() if key != "all"]
    return lines
