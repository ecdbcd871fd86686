"""HTTP to a FHIR R4 server: searches that follow `next` links, with a bearer token or SMART
backend services (OAuth 2 client credentials: a client secret, or a JWT assertion signed with the
clinic's private key, RS384 for RSA keys and ES384 for EC keys).

Bundles are parsed with fhir.resources' R4B models (R4B is R4 plus corrections; the package's
default models are R5). One resource that does not parse is reported on its own, not the page.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import requests
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
MAX_PAGES = 10_000  # a server whose `next` never ends stops here
TOKEN_MARGIN_SECONDS = 60  # a token this close to its expiry is renewed first
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MODELS = {"Appointment": Appointment, "Patient": Patient}


class FhirError(Exception):
    """The server could not be read (unreachable, refused the credentials, not FHIR): the sync
    stops and its state is left as it was, so the next sync reads the same changes again."""


@dataclass
class Page:
    """One page of a search: its resources by mode, and the resources that did not parse."""

    matches: list = field(default_factory=list)  # (resource, fullUrl)
    included: list = field(default_factory=list)  # (resource, fullUrl)
    unreadable: list = field(default_factory=list)  # (resourceType/id, reason)
    server_time: str | None = None  # the Bundle's meta.lastUpdated, as sent
    total: int | None = None  # the Bundle's total, when the server counts the matches


class Auth:
    """What goes in the Authorization header: a fixed bearer token, or one from the token endpoint."""

    def __init__(self, settings, http: requests.Session):
        self.settings = settings
        self.http = http
        self.token: str | None = settings.fhir_token or None
        self.expires_at = float("inf") if self.token else 0.0

    @property
    def uses_client_credentials(self) -> bool:
        return not self.settings.fhir_token and bool(self.settings.fhir_client_id)

    def header(self) -> dict[str, str]:
        if self.uses_client_credentials and (self.token is None or time.time() > self.expires_at - TOKEN_MARGIN_SECONDS):
            self.fetch_token()
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def renew(self) -> bool:
        """After a 401: a token from the token endpoint is fetched again (once); a fixed one cannot be."""
        if not self.uses_client_credentials:
            return False
        self.token = None
        return True

    def token_url(self) -> str:
        if self.settings.fhir_token_url:
            return self.settings.fhir_token_url
        url = self.settings.fhir_base_url.rstrip("/") + "/.well-known/smart-configuration"
        try:
            response = self.http.get(url, headers={"Accept": "application/json"},
                                     timeout=self.settings.fhir_timeout_seconds)
            response.raise_for_status()
            endpoint = response.json()["token_endpoint"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise FhirError(f"FHIR_TOKEN_URL is not set and {url} gave no token_endpoint ({_short(exc)})") from None
        self.settings = self.settings.model_copy(update={"fhir_token_url": endpoint})
        return endpoint

    def fetch_token(self) -> None:
        url = self.token_url()
        form = {"grant_type": "client_credentials", "scope": self.settings.fhir_scope}
        auth = None
        if self.settings.fhir_private_key_file:
            form.update(client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=self.assertion(url))
        elif self.settings.fhir_client_secret:
            auth = (self.settings.fhir_client_id, self.settings.fhir_client_secret)  # client_secret_basic
        else:
            raise FhirError("FHIR_CLIENT_ID is set without FHIR_CLIENT_SECRET or FHIR_PRIVATE_KEY_FILE")
        try:
            response = self.http.post(url, data=form, auth=auth, headers={"Accept": "application/json"},
                                      timeout=self.settings.fhir_timeout_seconds)
        except requests.RequestException as exc:
            raise FhirError(f"token endpoint {url} did not answer ({_short(exc)})") from None
        if response.status_code != 200:
            raise FhirError(f"token endpoint {url} refused the client credentials: HTTP {response.status_code} "
                            f"{_oauth_error(response)}")
        try:
            body = response.json()
            self.token = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise FhirError(f"token endpoint {url} answered without an access_token") from None
        self.expires_at = time.time() + float(body.get("expires_in") or 300)

    def assertion(self, audience: str) -> str:
        """The signed JWT that proves the client (SMART backend services)."""
        import jwt  # PyJWT, with cryptography for RS384 / ES384

        path = Path(self.settings.fhir_private_key_file)
        try:
            key_text = path.read_bytes()
        except OSError as exc:
            raise FhirError(f"FHIR_PRIVATE_KEY_FILE {path}: {exc.strerror or exc}") from None
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(key_text, password=None)
        except (ValueError, TypeError) as exc:
            raise FhirError(f"FHIR_PRIVATE_KEY_FILE {path} is not an unencrypted PEM private key ({exc})") from None
        algorithm = "ES384" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS384"
        now = int(time.time())
        claims = {"iss": self.settings.fhir_client_id, "sub": self.settings.fhir_client_id, "aud": audience,
                  "jti": uuid.uuid4().hex, "iat": now, "exp": now + 300}
        headers = {"kid": self.settings.fhir_key_id} if self.settings.fhir_key_id else None
        return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


class FhirClient:
    def __init__(self, settings, http: requests.Session | None = None):
        if not settings.fhir_base_url:
            raise FhirError("FHIR_BASE_URL is not set")
        self.settings = settings
        self.base = settings.fhir_base_url.rstrip("/") + "/"
        self.http = http or requests.Session()
        self.auth = Auth(settings, self.http)
        self.requests = 0

    def get(self, url: str, params: dict | list | None = None) -> dict:
        for attempt in (1, 2):
            headers = {"Accept": FHIR_JSON, **self.auth.header()}
            try:
                response = self.http.get(url, params=params, headers=headers,
                                         timeout=self.settings.fhir_timeout_seconds)
            except requests.RequestException as exc:
                raise FhirError(f"{_where(url)} did not answer ({_short(exc)})") from None
            self.requests += 1
            if response.status_code == 401 and attempt == 1 and self.auth.renew():
                continue
            break
        if response.status_code in (401, 403):
            raise FhirError(f"{_where(url)} refused the credentials: HTTP {response.status_code} "
                            f"({'check FHIR_TOKEN' if self.settings.fhir_token else 'check the client credentials and FHIR_SCOPE'})")
        if response.status_code != 200:
            raise FhirError(f"{_where(url)} answered HTTP {response.status_code}{_outcome(response)}")
        try:
            body = response.json()
        except ValueError:
            raise FhirError(f"{_where(url)} did not answer with JSON") from None
        if not isinstance(body, dict):
            raise FhirError(f"{_where(url)} did not answer with a FHIR resource")
        return body

    def search(self, resource_type: str, params: list[tuple[str, str]]) -> Iterator[Page]:
        """Every page of a search, following the Bundle's `next` link until there is none."""
        url: str | None = urljoin(self.base, resource_type)
        query: list | None = params
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            body = self.get(url, query)
            if body.get("resourceType") != "Bundle":
                raise FhirError(f"{_where(url)} answered a {body.get('resourceType')!r}, not a search Bundle")
            yield read_page(body)
            url = next_link(body, url)
            if url is None:
                return
            if url in seen:
                raise FhirError(f"the server's `next` link repeats a page ({_where(url)})")
            seen.add(url)
            query = None  # the next link carries the whole query
        raise FhirError(f"more than {MAX_PAGES} pages: the server's `next` links never end")

    def read(self, resource_type: str, resource_id: str):
        """One resource by id (a patient a page named but did not include); None if it is gone."""
        try:
            body = self.get(urljoin(self.base, f"{resource_type}/{resource_id}"))
        except FhirError as exc:
            if "HTTP 404" in str(exc) or "HTTP 410" in str(exc):
                return None
            raise
        try:
            return MODELS[resource_type].model_validate(body)
        except ValidationError:
            return None


def read_page(body: dict) -> Page:
    total = body.get("total")
    page = Page(server_time=(body.get("meta") or {}).get("lastUpdated"),
                total=total if isinstance(total, int) and not isinstance(total, bool) else None)
    for entry in body.get("entry") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        data = entry["resource"]
        kind = data.get("resourceType")
        model = MODELS.get(kind)
        if model is None:
            continue  # an OperationOutcome about the search, a Practitioner someone included
        mode = (entry.get("search") or {}).get("mode") or ("match" if kind == "Appointment" else "include")
        try:
            resource = model.model_validate(data)
        except ValidationError as exc:
            page.unreadable.append((f"{kind}/{data.get('id', '?')}", _validation_reason(exc)))
            continue
        (page.matches if mode == "match" else page.included).append((resource, entry.get("fullUrl")))
    return page


def next_link(body: dict, current: str) -> str | None:
    for link in body.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return urljoin(current, link["url"])
    return None


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"not a valid R4 resource ({where + ': ' if where else ''}{first.get('msg', 'invalid')})"


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"  # no query: it may hold dates, never PHI, but keep it short


def _short(exc: Exception) -> str:
    return type(exc).__name__


def _oauth_error(response) -> str:
    try:
        body = response.json()
        return f"({body.get('error', '')}{': ' + body['error_description'] if body.get('error_description') else ''})"
    except (ValueError, AttributeError, TypeError):
        return ""


def _outcome(response) -> str:
    """The first issue of an OperationOutcome, if the server sent one."""
    try:
        body = response.json()
        issue = (body.get("issue") or [{}])[0]
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        return f": {text}" if text else ""
    except (ValueError, AttributeError, TypeError, IndexError):
        return ""
