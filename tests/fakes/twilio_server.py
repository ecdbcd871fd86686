"""A fake Twilio REST API on loopback: the real twilio library talks to it in tests.

Only what the service uses: POST /2010-04-01/Accounts/{AccountSid}/Messages.json, to a number
(SMS) or a "whatsapp:+1..." address (WhatsApp, from a "whatsapp:" sender).
"""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

API_VERSION = "2010-04-01"
HANG_LIMIT_SECONDS = 5.0  # a hung request never outlives a test by more than this
# A hang asked to outlast a client's timeout (the service's is 10 s) ends by this all the same.
LONG_HANG_LIMIT_SECONDS = 30.0


@dataclass(frozen=True)
class _Hang:
    seconds: float
    accept: bool  # taken as Twilio would take it (the text reaches the patient), answered late


@dataclass
class _Failure:
    status: int
    code: int
    message: str
    times: int
    headers: dict | None = None


def twilio_error(status: int, code: int, message: str, headers: dict | None = None) -> Response:
    body = {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers)


def _channel(address: str) -> str:
    """"whatsapp" for "whatsapp:+1555...", else "sms"."""
    return address.partition(":")[0] if ":" in address else "sms"


class FakeTwilio:
    def __init__(self, account_sid: str | None = None, auth_token: str | None = None):
        self.account_sid = account_sid or "AC" + uuid.uuid4().hex
        self.auth_token = auth_token or uuid.uuid4().hex
        self.messages: list[dict] = []
        self.requests: list[dict] = []  # every request that reached us, accepted or not
        self._lock = threading.Lock()
        self._next_failures: list[_Failure] = []
        self._per_number: dict[str, _Failure] = {}
        self._outage: _Failure | None = None
        self._hangs: list[_Hang] = []
        self._delay = 0.0
        self._rate: float | None = None
        self._last_accepted: dict[str, float] = {}  # sender -> when its bucket was last drawn on
        self._tokens: dict[str, float] = {}
        self.rate_limited = 0  # requests answered 429 because of enforce_rate
        self._release = threading.Event()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> "FakeTwilio":
        # A short poll interval: shutdown() waits up to one interval, once per test.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        name="fake-twilio", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeTwilio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(self, status: int = 500, code: int = 20500,
                  message: str = "Internal server error", times: int = 1,
                  headers: dict | None = None) -> None:
        with self._lock:
            self._next_failures.append(_Failure(status, code, message, times, headers))

    def outage(self, status: int = 503, code: int = 20503, message: str = "Service unavailable",
               headers: dict | None = None) -> None:
        """Answer every request (authenticated or not) with this error until `recover()`."""
        with self._lock:
            self._outage = _Failure(status, code, message, -1, headers)

    def recover(self) -> None:
        with self._lock:
            self._outage = None

    def fail_for(self, to_number: str, status: int = 400, code: int = 21211,
                 message: str | None = None) -> None:
        message = message or f"The 'To' number {to_number} is not a valid phone number."
        with self._lock:
            self._per_number[to_number] = _Failure(status, code, message, times=-1)

    def hang_next(self, times: int = 1, seconds: float = HANG_LIMIT_SECONDS, accept: bool = False) -> None:
        """Hold the next `times` requests without answering for `seconds` (at most
        LONG_HANG_LIMIT_SECONDS; reset() or stop() cut it short), so the client's timeout fires.

        With `accept`, each is taken first as Twilio would take it (the text reaches the patient,
        in `messages`) and the answer is what never comes in time; without, nothing is taken and
        the late answer is a 503. Hung requests are marked `hung` in `requests`."""
        hang = _Hang(max(0.0, min(seconds, LONG_HANG_LIMIT_SECONDS)), accept)
        with self._lock:
            self._hangs.extend([hang] * times)

    @property
    def hung(self) -> list[dict]:
        """The requests held without a timely answer (hang_next)."""
        return [request for request in list(self.requests) if request.get("hung")]

    def slow_down(self, seconds: float) -> None:
        """Answer every request after this long (0 for at once), like a slow provider."""
        with self._lock:
            self._delay = max(0.0, min(seconds, HANG_LIMIT_SECONDS))

    def enforce_rate(self, per_second: float | None, burst: float = 2.0) -> None:
        """Refuse (429, Retry-After 1) what a sender sends above this rate, as a carrier queue that
        overflows would: a token bucket per From/MessagingServiceSid holding `burst` messages."""
        with self._lock:
            self._rate, self._burst = per_second, burst
            self._last_accepted.clear()
            self._tokens.clear()

    def _over_rate(self, sender: str) -> bool:
        """Called with the lock held."""
        if not self._rate:
            return False
        now = time.monotonic()
        last = self._last_accepted.get(sender, now)
        tokens = min(self._burst, self._tokens.get(sender, self._burst) + (now - last) * self._rate)
        self._last_accepted[sender] = now
        if tokens < 1.0:
            self._tokens[sender] = tokens
            self.rate_limited += 1
            return True
        self._tokens[sender] = tokens - 1.0
        return False

    def reset(self) -> None:
        self._release.set()
        with self._lock:
            self.messages.clear()
            self.requests.clear()
            self._next_failures.clear()
            self._per_number.clear()
            self._outage = None
            self._hangs.clear()
            self._delay = 0.0
            self._rate = None
            self.rate_limited = 0
            self._release = threading.Event()

    # -- the API --------------------------------------------------------------------
    def _app(self, environ, start_response):
        request = Request(environ)
        return self._handle(request)(environ, start_response)

    def _handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        form = request.form.to_dict()
        with self._lock:
            hang = self._hangs.pop(0) if self._hangs else None
            self.requests.append({"method": request.method, "path": request.path, "form": form,
                                  "received_at": datetime.now(timezone.utc), "hung": hang is not None})
            release, delay, outage = self._release, self._delay, self._outage
        if delay:
            release.wait(delay)  # reset() or stop() cuts it short
        if hang is not None and not hang.accept:
            release.wait(hang.seconds)
            return twilio_error(503, 20503, "Service unavailable")
        response = self._answer(request, parts, form, outage)
        if hang is not None:
            release.wait(hang.seconds)  # taken; the answer comes after the client gave up
        return response

    def _answer(self, request: Request, parts: list[str], form: dict, outage: _Failure | None) -> Response:
        if outage is not None:
            return twilio_error(outage.status, outage.code, outage.message, outage.headers)

        if len(parts) != 4 or parts[0] != API_VERSION or parts[1] != "Accounts" \
                or parts[3] != "Messages.json":
            return twilio_error(404, 20404, "The requested resource was not found")
        if request.method != "POST":
            return twilio_error(405, 20004, "Method not allowed")
        if not self._authorized(request, parts[2]):
            return twilio_error(401, 20003, "Authenticate")

        to, body = form.get("To"), form.get("Body")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if sender and _channel(sender) != _channel(to):
            # As Twilio: a WhatsApp message must come from a WhatsApp sender, and an SMS from a number.
            return twilio_error(400, 21910, "Invalid From and To pair. From and To should be of the same channel")

        with self._lock:
            failure = self._per_number.get(to) or self._take_next_failure()
            if failure is None and self._over_rate(sender or service):
                failure = _Failure(429, 20429, "Too Many Requests", 1, {"Retry-After": "1"})
            if failure is None:
                sid = "SM" + uuid.uuid4().hex
                self.messages.append({"sid": sid, "to": to, "from_": sender,
                                      "messaging_service_sid": service, "body": body,
                                      "status_callback": form.get("StatusCallback"),
                                      "received_at": datetime.now(timezone.utc)})
        if failure is not None:
            return twilio_error(failure.status, failure.code, failure.message, failure.headers)
        return self._created(sid, parts[2], to, sender, service, body)

    def _take_next_failure(self) -> _Failure | None:
        if not self._next_failures:
            return None
        failure = self._next_failures[0]
        failure.times -= 1
        if failure.times <= 0:
            self._next_failures.pop(0)
        return failure

    def _authorized(self, request: Request, path_sid: str) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid == path_sid and password == self.auth_token

    def _created(self, sid, account_sid, to, sender, service, body) -> Response:
        now = format_datetime(datetime.now(timezone.utc))
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
        payload = {
            "account_sid": account_sid, "api_version": API_VERSION, "body": body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": sender, "messaging_service_sid": service,
            "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD",
            "sid": sid,
            # Twilio says "accepted" while a Messaging Service still picks the sender.
            "status": "queued" if sender else "accepted",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": to, "uri": uri,
        }
        return Response(json.dumps(payload), status=201, content_type="application/json")
