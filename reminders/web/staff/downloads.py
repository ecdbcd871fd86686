"""Files staff download (CSV exports, the PDF report), named after a patient's record id.

A record id comes from the clinic's own system and may hold anything: accents ("Nguyễn-7"), another
script ("患者-12"), even a newline or U+2028. An HTTP header must not carry control characters and
is Latin-1 at most, so the name is made safe first (safe_name) and then given twice (RFC 6266):
`filename="..."` in plain ASCII for old clients and `filename*=UTF-8''...` (RFC 5987,
percent-encoded) for every current browser. This is what Werkzeug's `send_file(download_name=...)`
does, with the same encoding; it is not used here because these bodies are built in memory, it would
mark the response `Cache-Control: no-cache` (patient data is sent `no-store`, see headers.py, which
only fills in headers not already set), and it passes a newline in the name on to the header (a 500).
"""
from __future__ import annotations

import unicodedata
from itertools import groupby
from urllib.parse import quote

from flask import Response
from werkzeug.http import quote_header_value

# Control and format characters (Cc, Cf: NUL, CR, LF, zero-width space, ...), line and paragraph
# separators (Zl, Zp), unassigned, private-use and surrogate code points, and what a file name must not hold.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"}
_UNSAFE_CHARACTERS = set('"\\/')
# RFC 5987 attr-char: what may stand unencoded in filename*= (the set Werkzeug's send_file uses).
_ATTR_CHARS = "!#$&+-.^_`|~"


def _replace(text: str, unsafe) -> str:
    """Each run of unsafe characters becomes one "_"."""
    return "".join("_" if bad else "".join(run) for bad, run in groupby(text, key=unsafe))


def safe_name(name: str) -> str:
    """The file name with control characters, line separators, other non-printing characters,
    quotes, slashes and backslashes replaced by "_"; letters of any script are kept."""
    name = unicodedata.normalize("NFC", name)
    return _replace(name, lambda c: c in _UNSAFE_CHARACTERS or unicodedata.category(c) in _UNSAFE_CATEGORIES
                    or (c.isspace() and c != " "))


def ascii_name(name: str) -> str:
    """An ASCII stand-in: accents dropped ("Nguyễn" -> "Nguyen"), any other non-ASCII letter -> "_"."""
    decomposed = "".join(c for c in unicodedata.normalize("NFKD", safe_name(name)) if not unicodedata.combining(c))
    # Again after NFKD: a full-width "／" or "＂" decomposes to "/" or '"'.
    return _replace(safe_name(decomposed), lambda c: not c.isascii())


def attachment_name(name: str) -> dict[str, str]:
    """Content-Disposition parameters for the name: `filename` always, `filename*` when it is not ASCII."""
    name = safe_name(name)
    fallback = ascii_name(name)
    if fallback == name:
        return {"filename": name}
    return {"filename": fallback, "filename*": "UTF-8''" + quote(name, safe=_ATTR_CHARS)}


def content_disposition(name: str) -> str:
    """`attachment; filename="..."` (always quoted, as before), then `filename*=UTF-8''...` when needed."""
    names = attachment_name(name)
    value = "attachment; filename=" + quote_header_value(names["filename"], allow_token=False)
    if "filename*" in names:
        value += "; filename*=" + names["filename*"]
    return value


def download(body: str | bytes, mimetype: str, name: str) -> Response:
    """A response that the browser saves as `name`, whatever characters `name` holds."""
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": content_disposition(name)})
