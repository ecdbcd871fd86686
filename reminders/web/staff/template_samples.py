"""The sample patients and visits a staff template is rendered for before it is saved, the
context each message is given when sent, and the clinic's store with the candidate in it."""
from __future__ import annotations

from jinja2 import TemplateSyntaxError, meta

from reminders.channel_specs import spec_of_part, template_suffixes
from reminders.rendering import TemplateStore, environment, render_problem, sample_context, template_language


def part_of(name: str) -> str:
    """The template part a file is, by its suffix (the channels' specs): sms | whatsapp | subject |
    text | html."""
    for part, suffix in template_suffixes().items():
        if name.endswith(suffix):
            return part
    return "text"


def without_suffix(name: str) -> str:
    """welcome for welcome.sms.j2, es/welcome for es/welcome.sms.j2."""
    suffix = template_suffixes().get(part_of(name), "")
    return name[: -len(suffix)] if suffix and name.endswith(suffix) else name


def base_name(name: str) -> str:
    """reply_crisis for es/reply_crisis.sms.j2."""
    return without_suffix(name.split("/", 1)[-1])


def segmented(name: str) -> bool:
    """Whether the template's text is billed in SMS segments (its channel counts them): measured,
    held to a budget and previewed as the texts a phone gets."""
    spec = spec_of_part(part_of(name))
    return spec is not None and spec.counts_segments


# (what the sample is, as told to the admin; the patient fields)
SAMPLE_PATIENTS = (
    ("Alex Rivera", {"first_name": "Alex", "last_name": "Rivera"}),
    ("a patient with no last name", {"first_name": "Sam", "last_name": ""}),
    ("a patient with a one-letter first name", {"first_name": "J", "last_name": "Ng"}),
    ("a patient with a long name", {"first_name": "Maria Fernanda Alejandra Guadalupe",
                                    "last_name": "de los Santos Villanueva-Rodriguez y Castellanos"}),
    ("a patient with a Cyrillic name", {"first_name": "Владимир", "last_name": "Иванов"}),
    ("a patient with a Chinese name", {"first_name": "美玲", "last_name": "王"}),
    ("a patient with an Arabic name", {"first_name": "محمد", "last_name": "العلي"}),
)
# (position, series length): every position of the longest series, and the end of the usual one
SERIES_POSITIONS = tuple((number, 8) for number in range(1, 9)) + ((6, 6),)


def visit_variants(settings, language: str = "en") -> list[tuple[str, dict | None]]:
    """Every kind of visit and position in a series, a visit without a location, and no visit."""
    base = sample_context(settings, language)["visit"]
    variants = []
    for number, series in SERIES_POSITIONS:
        variants.append((f"induction infusion {number} of {series}",
                         {**base, "kind": "induction", "number": number, "series_length": series,
                          "is_first": number == 1}))
    for number in (1, 12):
        variants.append((f"maintenance visit {number}", {**base, "kind": "maintenance", "number": number,
                                                          "series_length": 6, "is_first": False}))
    variants.append(("a visit with no location", {**base, "location": ""}))
    variants.append(("a visit at midnight lasting 40 minutes", {**base, "time": "12:00 AM", "duration_minutes": 40}))
    variants.append(("no visit", None))
    return variants


def allowed_names(store: TemplateStore, name: str) -> set[str]:
    """What a message can use: what every message is given (the patient, the clinic, the
    preparation settings, the visit when there is one), and what its default uses beyond that
    (an answer's words, a check-in's link, the next visit after a missed one). Anything else would
    render in the preview and fail when sent."""
    names = set(EVERY_MESSAGE)
    if base_name(name).startswith("reply_"):
        names.add("answer")  # every answer to a patient's text is given `answer` (reminders.inbound.replies)
    default = store.default_source(name)
    if default is not None:
        try:
            names |= meta.find_undeclared_variables(environment(store).parse(default))
        except TemplateSyntaxError:
            pass
    return names


EVERY_MESSAGE = ("patient", "clinic", "prep", "visit")


def template_context(store: TemplateStore, settings, name: str) -> dict:
    """The sample patient's context as this message gets it when sent: only what it is given."""
    allowed = allowed_names(store, name)
    return {key: value for key, value in sample_context(settings, template_language(name)).items() if key in allowed}


def labelled_contexts(store: TemplateStore, settings, name: str) -> list[tuple[str, dict]]:
    """The contexts a candidate must render in: each one its default renders in.

    Some messages go without a visit (the welcome text, most replies to a patient's text). When
    the default copes with `visit` being None, an edited version must cope too.
    """
    base = template_context(store, settings, name)
    default = store.default_source(name)
    visits = []
    compiled = None
    if default is not None:
        try:
            compiled = environment(store).from_string(default)
        except TemplateSyntaxError:
            compiled = None
    for label, visit in visit_variants(settings, template_language(name)):
        if compiled is None:
            if visit is not None:
                visits.append((label, visit))
        elif render_problem(compiled, name, {**base, "visit": visit}) is None:
            visits.append((label, visit))
    if not visits:
        visits = [("Alex Rivera's visit", base["visit"])]
    # The preview's own sample first, unlabelled: a problem there needs no "for whom".
    first = [("", base)] if compiled is None or render_problem(compiled, name, base) is None else []
    return first + [(f"{who}, {what}", {**base, "patient": {**base["patient"], **patient}, "visit": visit})
                    for who, patient in SAMPLE_PATIENTS for what, visit in visits]


class CandidateStore(TemplateStore):
    """The clinic's store, with one template replaced by the text being edited."""

    def __init__(self, store: TemplateStore, name: str, source: str):
        super().__init__(store.templates_dir, store.session)
        self._overrides = store.overrides()  # read once, so the checks need no database
        self.candidate_name, self.candidate_source = name, source
        self.fall_back = False  # a preview shows what the candidate does, never the default in its place

    def source(self, name: str) -> str | None:
        if name == self.candidate_name:
            return self.candidate_source
        return super().source(name)
