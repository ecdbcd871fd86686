"""The signed inbound-text webhook against a bare Flask endpoint doing the least a webhook can (issue 11).

    python benchmarks/webhook.py [--database-url URL] [--requests 1000] [--rate 100] [--threads 8]
                                 [--rounds 4] [--profile]

Both are served by waitress with the same number of threads (8 by default: what `reminders web`,
and so docker-compose's `web` service, runs; see README "A web server for a busy clinic"), in
this process, each on fresh data of its own, in interleaved rounds (project, bare, project, bare
...) so both see the same load:

  * project: the app's `POST /twilio/sms` (signature check, the patient found, the reply read and
    answered with TwiML, everything stored);
  * peer: a bare Flask view that checks the same signature with the twilio library, inserts one
    row, commits and answers the same TwiML.

Two measures each: the most requests per second one client gets in a row (sequential), and the
latency percentiles at a steady `--rate` (open loop: a request leaves every 1/rate seconds
whatever the answers do, so a server that falls behind shows it in p99).

`--profile` instead sends 500 signed texts to the project's view in this process (Flask's test
client, no server), counts the SQL statements each one makes (by what the text says) and prints
where the time went (cProfile).
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
import requests  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from benchmarks.dispatch import DEFAULT_URL, libpq_url, schema_url  # noqa: E402

BASE = "https://clinic.example.org"
TOKEN = uuid.uuid4().hex
ACCOUNT = "AC" + uuid.uuid4().hex
PATIENTS = 500
TEXTS = ["Thanks, see you then", "C", "What time is my visit?", "ok", "Running 10 min late"]


def fresh_schema(base_url: str) -> str:
    from reminders.migrations import upgrade

    schema = f"bench_webhook_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(base_url), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = schema_url(base_url, schema)
    upgrade(url)
    with psycopg.connect(libpq_url(base_url), options=f"-csearch_path={schema}") as conn:
        conn.execute("""
            INSERT INTO patients (external_id, first_name, last_name, phone, timezone, preferred_channel,
                                  sms_opted_out, welcomed_at, notes, created_at, updated_at)
            SELECT 'pat-' || g, 'Pat', 'Example', '+1415' || lpad(g::text, 7, '0'), 'America/New_York', 'sms',
                   false, now(), '', now(), now()
            FROM generate_series(1, %(n)s) AS g""", {"n": PATIENTS})
        conn.execute("""
            INSERT INTO appointments (external_id, patient_id, kind, number_in_course, starts_at, duration_minutes,
                                      location, status, needs_planning, created_at, updated_at)
            SELECT 'appt-' || id, id, 'induction', 2, now() + interval '2 days', 60, 'Suite 200', 'scheduled',
                   false, now(), now() FROM patients""")
        conn.commit()
    return url


def drop(base_url: str, url: str) -> None:
    from reminders.db import dispose_engines

    dispose_engines()
    with psycopg.connect(libpq_url(base_url), autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{url.rsplit("%3D", 1)[1]}" CASCADE')


def project_app(url: str):
    from reminders.config import Settings
    from reminders.web import create_app

    settings = Settings(database_url=url, data_dir=Path("/tmp/bench-webhook"), secret_key="bench",
                        twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN, twilio_from="+14155550100",
                        public_base_url=BASE)
    return create_app(settings)


def bare_app(url: str):
    """The least a webhook can do: check the signature, store the text, answer."""
    from flask import Flask, Response, abort, request
    from sqlalchemy import text
    from twilio.twiml.messaging_response import MessagingResponse

    from reminders.db import session_factory

    sessions = session_factory(url)
    validator = RequestValidator(TOKEN)
    app = Flask("bare")

    @app.post("/twilio/sms")
    def sms():
        if not validator.validate(BASE + request.full_path.rstrip("?"), request.form.to_dict(),
                                  request.headers.get("X-Twilio-Signature", "")):
            abort(403)
        with sessions() as session:
            session.execute(text("INSERT INTO inbound_messages (message_sid, from_number, to_number, body, "
                                 "received_at, classification, needs_staff) "
                                 "VALUES (:sid, :from_, '', :body, now(), 'free_text', false)"),
                            {"sid": request.form["MessageSid"], "from_": request.form["From"],
                             "body": request.form["Body"]})
            session.commit()
        answer = MessagingResponse()
        answer.message("Thanks, we got your message.")
        return Response(str(answer), content_type="text/xml")

    return app


class Server:
    def __init__(self, app, threads: int):
        from waitress.server import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=threads, ident="bench")
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.close()


_sids = itertools.count(1)


def signed_post(session: requests.Session, url: str) -> float:
    n = next(_sids)
    form = {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": ACCOUNT, "From": f"+1415{1 + n % PATIENTS:07d}",
            "To": "+14155550100", "Body": TEXTS[n % len(TEXTS)], "NumMedia": "0"}
    signature = RequestValidator(TOKEN).compute_signature(BASE + "/twilio/sms", form)
    started = time.perf_counter()
    answer = session.post(url + "/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}, timeout=60)
    if answer.status_code != 200:
        raise SystemExit(f"{url}: HTTP {answer.status_code}: {answer.text[:300]}")
    return time.perf_counter() - started


def sequential(url: str, count: int) -> float:
    with requests.Session() as session:
        for _ in range(20):
            signed_post(session, url)  # warm-up
        started = time.perf_counter()
        for _ in range(count):
            signed_post(session, url)
        return count / (time.perf_counter() - started)


def steady(url: str, count: int, rate: float) -> list[float]:
    """Open loop: request i leaves at start + i/rate; its latency counts from then."""
    local = threading.local()

    def one(due: float) -> float:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        signed_post(session, url)
        return time.perf_counter() - due

    start = time.perf_counter() + 0.2
    with ThreadPoolExecutor(max_workers=64) as pool:
        return sorted(pool.map(one, [start + i / rate for i in range(count)]))


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def profile(base_url: str, count: int = 500) -> None:
    """SQL statements per inbound text, by text, and cProfile's view of the request."""
    import cProfile
    import pstats
    from collections import defaultdict

    from sqlalchemy import event

    from reminders.db import get_engine

    url = fresh_schema(base_url)
    try:
        app = project_app(url)
        statements: list[str] = []

        @event.listens_for(get_engine(url), "before_cursor_execute")
        def _count(_conn, _cursor, statement, *_args):
            statements.append(statement.split(None, 1)[0].upper())

        client = app.test_client()

        def post(n: int) -> None:
            form = {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": ACCOUNT,
                    "From": f"+1415{1 + n % PATIENTS:07d}", "To": "+14155550100", "Body": TEXTS[n % len(TEXTS)],
                    "NumMedia": "0"}
            signature = RequestValidator(TOKEN).compute_signature(BASE + "/twilio/sms", form)
            answer = client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
            if answer.status_code != 200:
                raise SystemExit(f"HTTP {answer.status_code}: {answer.text[:300]}")

        for n in range(20):
            post(n)  # warm-up: templates compiled, connections open
        per_text: dict[str, list[int]] = defaultdict(list)
        kinds: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for n in range(20, 20 + len(TEXTS) * 4):
            statements.clear()
            post(n)
            body = TEXTS[n % len(TEXTS)]
            per_text[body].append(len(statements))
            for kind in statements:
                kinds[body][kind] += 1
        print("SQL statements per inbound text (a patient with a visit in 2 days, no check-in open):")
        for body, counts in per_text.items():
            print(f"  {body!r:28} {statistics.mean(counts):4.1f}  ({', '.join(f'{k} {v // len(counts)}' for k, v in kinds[body].items())})")
        everything = [c for counts in per_text.values() for c in counts]
        print(f"  mean over the five texts   {statistics.mean(everything):4.1f}")
        cpu = cProfile.Profile()
        started = time.perf_counter()
        cpu.enable()
        for n in range(count):
            post(n)
        cpu.disable()
        print(f"\n{count} texts in {time.perf_counter() - started:.2f} s under cProfile")
        stats = pstats.Stats(cpu, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
    finally:
        drop(base_url, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds the requests are split into")
    parser.add_argument("--profile", action="store_true", help="count SQL per text and profile; no servers")
    args = parser.parse_args()
    import logging

    from reminders.logs import configure_logging
    configure_logging(logging.WARNING)
    # waitress warns on every request queued behind busy threads; the p99 column says it once.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    if args.profile:
        profile(args.database_url)
        return

    urls = {name: fresh_schema(args.database_url) for name in ("project", "bare")}
    makers = {"project": project_app, "bare": bare_app}
    chunk = max(1, args.requests // args.rounds)
    done = {name: [0, 0.0, []] for name in urls}  # requests, seconds, latencies
    try:
        servers = {name: Server(makers[name](url), args.threads) for name, url in urls.items()}
        for server in servers.values():
            server.__enter__()
        try:
            # Interleaved rounds (project, bare, project, bare ...), so both see the same load.
            for _ in range(args.rounds):
                for name, server in servers.items():
                    per_second = sequential(server.url, chunk)
                    done[name][0] += chunk
                    done[name][1] += chunk / per_second
            for _ in range(args.rounds):
                for name, server in servers.items():
                    done[name][2].extend(steady(server.url, chunk, args.rate))
        finally:
            for server in servers.values():
                server.__exit__(None, None, None)
    finally:
        for url in urls.values():
            drop(args.database_url, url)
    results = {}
    for name, (count, seconds, latencies) in done.items():
        latencies.sort()
        results[name] = (count / seconds, latencies)
        print(f"  {name}: {count / seconds:.0f} req/s, p50 {1000 * statistics.median(latencies):.0f} ms, "
              f"p99 {1000 * percentile(latencies, 99):.0f} ms", file=sys.stderr)
    load = os.getloadavg()
    (p_rate, p_lat), (b_rate, b_lat) = results["project"], results["bare"]
    print(f"\n{args.requests:,} signed texts each in {args.rounds} interleaved rounds, waitress with "
          f"{args.threads} threads, load average "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} CPU(s)\n")
    print("| measure | project `/twilio/sms` | bare Flask: signature, one INSERT, commit | ratio |")
    print("|---|---|---|---|")
    print(f"| most requests a second, one client | {p_rate:.0f} req/s | {b_rate:.0f} req/s | {100 * p_rate / b_rate:.0f} % |")
    for p in (50, 99):
        print(f"| p{p} at a steady {args.rate:g} req/s | {1000 * percentile(p_lat, p):.0f} ms "
              f"| {1000 * percentile(b_lat, p):.0f} ms | |")


if __name__ == "__main__":
    main()
