"""The statistical second opinion beside the phrase rules: how likely a text is to need someone
paged (any tier but routine), from a linear model over character and word n-grams.

The model is trained with scikit-learn (`reminders triage train`, see reminders/triage/training.py)
and exported to model.json; here it is scored in pure Python, because the web app and the worker
must not carry scikit-learn and numpy in memory. The scoring repeats, step for step, what the
trained pipeline does:

    FeatureUnion(TfidfVectorizer(analyzer="char_wb"), TfidfVectorizer(analyzer="word"))
    -> LogisticRegression

that is, for each vectorizer: the text normalised (`normalise`), cut into n-grams, counts of the
n-grams in its vocabulary, sublinear tf (1 + ln count), times idf, l2-normalised; then the dot
product with the coefficients, plus the intercept, through the logistic function.

model.json holds, per vectorizer, its settings, the number of training documents, and for each
term ``[weight, df]``: the weight is idf * coefficient folded together (what a term adds, before
the l2 norm), and df (the documents it was in) gives back the idf the norm needs.

The file is read once per process. A missing or broken file is logged once and every text then
scores 0.0: the rules still run, and nothing here raises on any text.
"""
from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODEL_PATH = Path(__file__).resolve().parent / "model.json"
FORMAT = 1
# scikit-learn's default token_pattern: words of two or more word characters.
WORD_PATTERN = r"(?u)\b\w\w+\b"

_REPEATED_LETTER = re.compile(r"([^\W\d_])\1{2,}")
_WHITE_SPACES = re.compile(r"\s\s+")  # as scikit-learn's char_wb analyzer collapses them


def normalise(text: str) -> str:
    """The one form a text is read in, in training and in scoring: NFKC (full-width and styled
    letters to plain ones), casefold, accents stripped ("según" and "segun" are typed alike), and
    a letter repeated three or more times cut to two ("nooooo" is "noo", "sooo" is "soo"; digits
    are left, "1000 mg" stays)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = unicodedata.normalize("NFC", text)  # recompose what has no accent to drop (Hangul)
    return _REPEATED_LETTER.sub(r"\1\1", text)


def char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's char_wb n-grams of a normalised text: inside each word padded with a space at
    either end, every n-gram of low..high characters; a word shorter than n counts once, whole."""
    found = []
    for word in _WHITE_SPACES.sub(" ", text).split():
        word = f" {word} "
        for n in range(low, high + 1):
            offset = 0
            found.append(word[offset:offset + n])
            while offset + n < len(word):
                offset += 1
                found.append(word[offset:offset + n])
            if offset == 0:  # the word is shorter than n: longer n-grams would repeat it
                break
    return found


def word_ngrams(text: str, pattern: re.Pattern[str], low: int, high: int) -> list[str]:
    """scikit-learn's word n-grams of a normalised text: the tokens, then runs of low..high of them
    joined by one space."""
    tokens = pattern.findall(text)
    found = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        found += [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return found


@dataclass(frozen=True)
class Vectorizer:
    """One TF-IDF vectorizer of the union, folded with its share of the coefficients."""

    analyzer: str
    low: int
    high: int
    pattern: re.Pattern[str] | None
    terms: dict[str, tuple[float, float]]  # term -> (weight = idf * coefficient, idf)

    def ngrams(self, text: str) -> list[str]:
        if self.analyzer == "char_wb":
            return char_wb_ngrams(text, self.low, self.high)
        return word_ngrams(text, self.pattern, self.low, self.high)

    def score(self, text: str) -> float:
        """This vectorizer's part of the decision: the weighted sum of sublinear tf over the l2 norm
        of the tf-idf vector (0 when no term of the vocabulary is in the text)."""
        counts = Counter(gram for gram in self.ngrams(text) if gram in self.terms)
        total = squares = 0.0
        for term, count in counts.items():
            weight, idf = self.terms[term]
            tf = 1.0 + math.log(count)
            total += tf * weight
            squares += (tf * idf) ** 2
        return total / math.sqrt(squares) if squares else 0.0


@dataclass(frozen=True)
class Model:
    vectorizers: tuple[Vectorizer, ...]
    intercept: float
    threshold: float

    def risk(self, text: str) -> float:
        """The probability (0..1) that the text needs someone paged."""
        normalised = normalise(text)
        return logistic(self.intercept + sum(v.score(normalised) for v in self.vectorizers))

    def flags(self, text: str) -> bool:
        return self.risk(text) >= self.threshold


def logistic(z: float) -> float:
    """1 / (1 + e^-z), written so that no z overflows."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def idf(documents: int, df: int) -> float:
    """scikit-learn's smoothed idf: as if one more document held every term once."""
    return math.log((documents + 1) / (df + 1)) + 1.0


def _vectorizer(data: dict[str, Any]) -> Vectorizer:
    analyzer = data["analyzer"]
    if analyzer not in ("char_wb", "word"):
        raise ValueError(f"unknown analyzer {analyzer!r}")
    if not (data["sublinear_tf"] is True and data["norm"] == "l2" and data["smooth_idf"] is True):
        raise ValueError("only sublinear tf, smoothed idf and the l2 norm are scored here")
    low, high = (int(n) for n in data["ngram_range"])
    pattern = re.compile(data["token_pattern"]) if analyzer == "word" else None
    documents = int(data["documents"])
    terms = {term: (float(weight), idf(documents, int(df))) for term, (weight, df) in data["terms"].items()}
    return Vectorizer(analyzer, low, high, pattern, terms)


def model_from(data: dict[str, Any]) -> Model:
    """A Model from the contents of a model.json; ValueError (or KeyError, TypeError) when the file
    is not one this code can score exactly as it was trained."""
    if data.get("format") != FORMAT:
        raise ValueError(f"model format {data.get('format')!r}, this code reads {FORMAT}")
    vectorizers = tuple(_vectorizer(v) for v in data["vectorizers"])
    return Model(vectorizers, float(data["intercept"]), float(data["threshold"]))


def load(path: Path | str) -> Model:
    """Read a model.json (raises when it is missing or broken; `risk` and `flags` do not)."""
    return model_from(json.loads(Path(path).read_text(encoding="utf-8")))


@cache
def shipped_model() -> Model | None:
    """The model.json shipped with the package, read once per process; None, logged once, when it
    is missing or broken."""
    try:
        return load(MODEL_PATH)
    except Exception as exc:  # noqa: BLE001 - any fault in the file leaves the rules working alone
        log.error("triage model %s could not be loaded (%s: %s); texts score 0.0, the phrase rules still run",
                  MODEL_PATH, type(exc).__name__, exc)
        return None


def risk(text: str) -> float:
    """The probability (0..1) that a patient's text needs someone paged (tier above routine).

    0.0 when the model cannot be loaded or the text cannot be read; never raises. The text is not
    logged (it is a patient's)."""
    model = shipped_model()
    if model is None or not isinstance(text, str):
        return 0.0
    try:
        return model.risk(text)
    except Exception as exc:  # noqa: BLE001 - a second opinion must never break the reply path
        log.error("triage model could not score a text (%s)", type(exc).__name__)
        return 0.0


def flags(text: str) -> bool:
    """Whether the model would page someone for this text: risk at or above the threshold chosen
    in training (at most 2% of routine texts reached it, out of fold). False without a model."""
    model = shipped_model()
    return model is not None and risk(text) >= model.threshold
