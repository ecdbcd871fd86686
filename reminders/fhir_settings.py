"""Reading FHIR settings that are more than a plain value (kept apart so config.py stays small)."""
from __future__ import annotations

import json

KINDS = ("induction", "maintenance")


def parse_appointment_types(value) -> dict[str, str]:
    """FHIR_APPOINTMENT_TYPES: JSON (`{"KET-IND": "induction"}`) or `code=kind,code=kind`.

    Keys are matched without regard to case against the codes and texts of an appointment's
    appointmentType and serviceType; values are induction or maintenance."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"FHIR_APPOINTMENT_TYPES is not valid JSON: {exc}") from None
        else:
            pairs = {}
            for part in text.split(","):
                if not part.strip():
                    continue
                code, sep, kind = part.partition("=")
                if not sep:
                    raise ValueError(f"FHIR_APPOINTMENT_TYPES: {part.strip()!r} is not code=kind "
                                     "(like KET-IND=induction,KET-MAINT=maintenance)")
                pairs[code] = kind
            value = pairs
    if not isinstance(value, dict):
        raise ValueError("FHIR_APPOINTMENT_TYPES must map appointment types to induction or maintenance")
    types = {}
    for code, kind in value.items():
        kind = str(kind).strip().lower()
        if kind not in KINDS:
            raise ValueError(f"FHIR_APPOINTMENT_TYPES: {code!r} maps to {kind!r}; a visit is induction or maintenance")
        types[str(code).strip().lower()] = kind
    return types
