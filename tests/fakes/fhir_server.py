"""A fake FHIR R4 server on loopback, answering as HAPI FHIR or OpenEMR do, for the FHIR sync tests.

Only what the sync uses:
- `GET <base>/Appointment?_lastUpdated=ge..&date=ge..&date=le..&_include=Appointment:patient&_count=N`
  (searchset Bundles). Paging as each server does it: HAPI keeps the search's results and pages them
  through `<base>?_getpages=<id>&_getpagesoffset=N&_count=N` with the included patients of each page
  beside it; OpenEMR repeats the query with `_offset` and does not include patients (the client reads
  them with `GET <base>/Patient/<id>`).
- `GET <base>/Patient/<id>`; a deleted resource answers 410, an unknown one 404.
- `POST /token` (OAuth 2 client credentials: client_secret_basic, or a client assertion JWT signed
  RS384/ES384 that is checked against the public key given) and `<base>/.well-known/smart-configuration`.
Every FHIR request needs `Authorization: Bearer <token>`.
"""
from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

FLAVORS = {
    "hapi": {"base": "/fhir"},
    "openemr": {"base": "/apis/default/fhir"},
}


def instant(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def _compare(prefixed: str, actual: datetime) -> bool:
    prefix, text = (prefixed[:2], prefixed[2:]) if prefixed[:2] in ("ge", "le", "gt", "lt", "eq") else ("eq", prefixed)
    wanted = parse_instant(text)
    return {"ge": actual >= wanted, "le": actual <= wanted, "gt": actual > wanted,
            "lt": actual < wanted, "eq": actual == wanted}[prefix]


class FakeFhir:
    def __init__(self, flavor: str = "hapi", token: str | None = None, page_size: int | None = None):
        self.flavor = flavor
        self.token = token or uuid.uuid4().hex
        self.page_size = page_size  # the server's own page size, whatever _count asks (None: _count)
        self.patients: dict[str, dict] = {}
        self.appointments: dict[str, dict] = {}
        self.deleted: set[str] = set()
        self.requests: list[dict] = []
        self.clients: dict[str, str] = {}  # client_id -> secret
        self.client_keys: dict[str, object] = {}  # client_id -> public key
        self.issued: list[str] = []
        self.seen_assertions: list[dict] = []
        self._searches: dict[str, list[str]] = {}
        self._clock = datetime.now(timezone.utc) - timedelta(minutes=5)
        self._ids = 0
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def base_url(self) -> str:
        return self.origin + FLAVORS[self.flavor]["base"]

    @property
    def token_url(self) -> str:
        return self.origin + "/token"

    def start(self) -> "FakeFhir":
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fake-fhir", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeFhir":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _tick(self) -> datetime:
        """The server's clock for meta.lastUpdated: now, and always later than the last change."""
        self._clock = max(self._clock + timedelta(milliseconds=1), datetime.now(timezone.utc))
        return self._clock

    def advance(self, seconds: float) -> None:
        """Move the server's clock on: the next change is stamped at least this much later."""
        with self._lock:
            self._clock += timedelta(seconds=seconds)

    def _new_id(self) -> str:
        self._ids += 1
        return str(self._ids) if self.flavor == "hapi" else str(uuid.uuid4())

    def _meta(self, resource: dict) -> None:
        version = int((resource.get("meta") or {}).get("versionId", "0")) + 1
        resource["meta"] = {"versionId": str(version), "lastUpdated": instant(self._tick())}

    # -- data, written as each server writes it -------------------------------------------------
    def add_patient(self, given: str = "Ana", family: str = "Ruiz", phone: str | None = "(202) 555-0143",
                    email: str | None = None, language: str | None = None, phone_use: str = "mobile") -> str:
        with self._lock:
            pid = self._new_id()
            telecom = []
            if phone:
                telecom.append({"system": "phone", "value": phone, "use": phone_use})
            if email:
                telecom.append({"system": "email", "value": email, "use": "home"})
            patient = {"resourceType": "Patient", "id": pid, "active": True,
                       "name": [{"use": "official", "family": family, "given": [given]}],
                       "telecom": telecom, "gender": "unknown", "birthDate": "1980-04-02"}
            if self.flavor == "openemr":
                patient["identifier"] = [{"use": "official", "type": {"coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PT"}]}, "value": pid[:8]}]
            if language:
                if self.flavor == "hapi":
                    patient["communication"] = [{"language": {"coding": [
                        {"system": "urn:ietf:bcp:47", "code": language}]}, "preferred": True}]
                else:  # OpenEMR: its list's text and an ISO code with region
                    name = {"es": "Spanish", "en": "English"}.get(language, language)
                    patient["communication"] = [{"language": {"coding": [
                        {"system": "urn:ietf:bcp:47", "code": f"{language}-US", "display": name}], "text": name}}]
            self._meta(patient)
            self.patients[pid] = patient
            return pid

    def add_appointment(self, patient_id: str, start: datetime, kind: str = "induction", status: str = "booked",
                        minutes: int = 60) -> str:
        with self._lock:
            aid = self._new_id()
            appointment = {
                "resourceType": "Appointment", "id": aid, "status": status,
                "start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat(),
                "participant": [
                    {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"},
                    {"actor": {"reference": "Practitioner/9", "display": "Dr. Lee"}, "status": "accepted"},
                ],
            }
            if self.flavor == "hapi":
                appointment["appointmentType"] = {"coding": [
                    {"system": "http://clinic.example/appointment-type", "code": {"induction": "KET-IND",
                                                                                  "maintenance": "KET-MAINT"}.get(kind, kind)}]}
                appointment["minutesDuration"] = minutes
            else:  # OpenEMR: the appointment category's name as text, and a Location participant
                appointment["serviceType"] = [{"text": {"induction": "Ketamine Induction",
                                                        "maintenance": "Ketamine Maintenance"}.get(kind, kind)}]
                appointment["participant"].append({"actor": {"reference": f"Location/{uuid.uuid4()}",
                                                             "display": "Main clinic"}, "status": "accepted"})
            self._meta(appointment)
            self.appointments[aid] = appointment
            return aid

    def update_appointment(self, aid: str, **changes) -> None:
        with self._lock:
            appointment = self.appointments[aid]
            for key, value in changes.items():
                appointment[key] = value.isoformat() if isinstance(value, datetime) else value
            self._meta(appointment)

    def update_patient(self, pid: str, **changes) -> None:
        with self._lock:
            self.patients[pid].update(changes)
            self._meta(self.patients[pid])

    def delete_appointment(self, aid: str) -> None:
        with self._lock:
            self.appointments.pop(aid)
            self.deleted.add(aid)

    def fhir_requests(self, path_end: str = "") -> list[dict]:
        return [r for r in self.requests if r["path"].endswith(path_end) and not r["path"].endswith("/token")]

    # -- HTTP -------------------------------------------------------------------------------
    def _app(self, environ, start_response):
        request = Request(environ)
        with self._lock:
            self.requests.append({"method": request.method, "path": request.path, "args": list(request.args.items(multi=True)),
                                  "authorization": request.headers.get("Authorization", "")})
            response = self._route(request)
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        base = FLAVORS[self.flavor]["base"]
        if request.path == "/token" and request.method == "POST":
            return self._token(request)
        if request.path == base + "/.well-known/smart-configuration":
            return _json({"token_endpoint": self.token_url, "grant_types_supported": ["client_credentials"],
                          "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"]})
        if request.headers.get("Authorization") != f"Bearer {self.token}" and request.headers.get(
                "Authorization", "").removeprefix("Bearer ") not in self.issued:
            return _outcome(401, "security", "authentication required")
        path = request.path.removeprefix(base).strip("/")
        if path == "" and request.args.get("_getpages"):  # HAPI's paging
            return self._page(request.args["_getpages"], int(request.args.get("_getpagesoffset", 0)),
                              int(request.args.get("_count", 20)))
        if path == "Appointment":
            return self._search(request)
        if path == "Patient":  # one page: the sync asks only for what changed
            ids = sorted((p for p, patient in self.patients.items() if all(
                _compare(v, parse_instant(patient["meta"]["lastUpdated"])) for v in request.args.getlist("_lastUpdated"))),
                key=lambda p: self.patients[p]["meta"]["lastUpdated"])
            return _json(self._bundle(len(ids), [{"relation": "self", "url": request.url}],
                                      [(self.patients[p], "match") for p in ids]))
        if path.startswith("Patient/"):
            pid = path.split("/", 1)[1]
            if pid in self.patients:
                return _json(self.patients[pid])
            return _outcome(404, "not-found", f"Resource Patient/{pid} is not known")
        if path.startswith("Appointment/"):
            aid = path.split("/", 1)[1]
            if aid in self.deleted:
                return _outcome(410, "deleted", f"Resource Appointment/{aid} was deleted")
            if aid in self.appointments:
                return _json(self.appointments[aid])
            return _outcome(404, "not-found", f"Resource Appointment/{aid} is not known")
        return _outcome(404, "not-supported", f"unknown path {request.path}")

    def _matching(self, request: Request) -> list[str]:
        out = []
        for aid, appointment in self.appointments.items():
            updated = parse_instant(appointment["meta"]["lastUpdated"])
            start = parse_instant(appointment["start"])
            if all(_compare(v, updated) for v in request.args.getlist("_lastUpdated")) and all(
                    _compare(v, start) for v in request.args.getlist("date")):
                out.append(aid)
        out.sort(key=lambda a: self.appointments[a]["meta"]["lastUpdated"])
        return out

    def _count(self, request: Request) -> int:
        return self.page_size or int(request.args.get("_count", 50))

    def _search(self, request: Request) -> Response:
        ids = self._matching(request)
        count = self._count(request)
        include = "Appointment:patient" in request.args.getlist("_include")
        if self.flavor == "hapi":
            search_id = str(uuid.uuid4())
            self._searches[search_id] = (ids, include)  # HAPI pages a snapshot of the search
            return self._page(search_id, 0, count)
        offset = int(request.args.get("_offset", 0))
        page = ids[offset:offset + count]
        links = [{"relation": "self", "url": request.url}]
        if offset + count < len(ids):
            args = [(k, v) for k, v in request.args.items(multi=True) if k != "_offset"] + [("_offset", str(offset + count))]
            links.append({"relation": "next", "url": f"{self.base_url}/Appointment?{urlencode(args)}"})
        # OpenEMR answers without the _include (the client reads each patient on its own).
        return _json(self._bundle(len(ids), links, [(self.appointments[a], "match") for a in page]))

    def _page(self, search_id: str, offset: int, count: int) -> Response:
        if search_id not in self._searches:
            return _outcome(410, "not-found", f"Search {search_id} has expired")
        ids, include = self._searches[search_id]
        # Entries of resources deleted since the search was made are left out (as HAPI does).
        page = [a for a in ids[offset:offset + count] if a in self.appointments]
        links = [{"relation": "self", "url": f"{self.base_url}?_getpages={search_id}&_getpagesoffset={offset}&_count={count}"}]
        if offset + count < len(ids):
            nxt = {"_getpages": search_id, "_getpagesoffset": offset + count, "_count": count,
                   "_pretty": "true", "_bundletype": "searchset"}
            links.append({"relation": "next", "url": f"{self.base_url}?{urlencode(nxt)}"})
        entries = [(self.appointments[a], "match") for a in page]
        if include:
            seen = []
            for aid in page:
                ref = self.appointments[aid]["participant"][0]["actor"]["reference"].split("/")[1]
                if ref in self.patients and ref not in seen:
                    seen.append(ref)
            entries += [(self.patients[p], "include") for p in seen]
        return _json(self._bundle(len(ids), links, entries))

    def _bundle(self, total: int, links: list, entries: list[tuple[dict, str]]) -> dict:
        out = []
        for resource, mode in entries:
            out.append({"fullUrl": f"{self.base_url}/{resource['resourceType']}/{resource['id']}", "resource": resource,
                        "search": {"mode": mode}})
        bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset",
                  "meta": {"lastUpdated": instant(datetime.now(timezone.utc))}, "link": links, "entry": out}
        if self.flavor == "hapi":
            bundle["total"] = total
        return bundle

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        client_id = None
        if form.get("client_assertion"):
            import jwt

            assertion = form["client_assertion"]
            claimed = jwt.decode(assertion, options={"verify_signature": False})
            client_id = claimed.get("iss")
            key = self.client_keys.get(client_id)
            if key is None:
                return _json({"error": "invalid_client", "error_description": "unknown client"}, 401)
            try:
                claims = jwt.decode(assertion, key, algorithms=["RS384", "ES384"], audience=self.token_url)
            except jwt.PyJWTError as exc:
                return _json({"error": "invalid_client", "error_description": str(exc)}, 401)
            self.seen_assertions.append({"header": jwt.get_unverified_header(assertion), "claims": claims})
        else:
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                if self.clients.get(client_id) != secret:
                    return _json({"error": "invalid_client", "error_description": "bad client secret"}, 401)
            else:
                return _json({"error": "invalid_client"}, 401)
        token = uuid.uuid4().hex
        self.issued.append(token)
        return _json({"access_token": token, "token_type": "bearer", "expires_in": 300, "scope": form.get("scope", "")})


def _json(body: dict, status: int = 200) -> Response:
    content_type = "application/fhir+json;charset=utf-8" if body.get("resourceType") else "application/json"
    return Response(json.dumps(body), status=status, content_type=content_type)


def _outcome(status: int, code: str, text: str) -> Response:
    return _json({"resourceType": "OperationOutcome",
                  "issue": [{"severity": "error", "code": code, "diagnostics": text}]}, status)

