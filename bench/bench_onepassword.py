"""1Password Events benchmark: prints figures (nothing is asserted).

    python bench/bench_onepassword.py [--events 200000 1000000] [--repeat 2]
        [--latency 0.3] [--latency-events 60000]

For each event count, pages of 1,000 sign-in attempts, item usages and audit events are rendered
once by the simulator, before anything is timed, and served as ready bytes by a small server in
its own process (the Events API's introspect and POST cursor pagination), so what is measured is the
client, not the server. Each of these runs in a fresh process and reports seconds, events per
second and its own peak RSS:
- fetch only: requests + orjson, nothing stored (how fast the server answers: the floor);
- baseline: requests + orjson + `pyarrow.Table.from_pylist` (nested structs) + DuckDB insert,
  the hand-written path;
- `posture load onepassword`, the whole process (flattened typed columns, `raw`, merge on
  `uuid`, in runs of about 250,000 events, the three types together), and its peak in each of
  dlt's steps (extract, normalize, load; `other` for imports, setup and what lies between),
  and the size of the warehouse file it leaves (beside the baseline's);
- the same again with nothing new (cursor kept: nothing is added).
The source's own rate limiter (1Password's 600 requests a minute) is lifted for these runs, as
the server does not limit either: past 600 pages in a minute it would measure the limit, not the
loader. Each figure is the fastest of `--repeat` runs (the machine may be shared); its peak
memory is that run's. Aims for the load: at least 20,000 events/s, and a peak under 400 MB that
stays flat from 200,000 to 1,000,000 events.

Then a distant vendor: the same server answers each request `--latency` seconds after it
arrived (requests sent together wait together), for `--latency-events` events, and the load
keeps 1Password's real rate limits. Beside it: the hand-written fetch, one request at a time
(one page per round trip, as a client reading the types in turn gets), the vendor's ceiling
(600 requests a minute), and the most that reading each type's pages in cursor order allows
(the largest type's pages, one round trip each), with the requests each path sent.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Mapping
from email.utils import formatdate
from functools import partial
from pathlib import Path

from common import (
    bench_env,
    file_mb,
    posture_program,
    prebuilt_pages_process,
    print_file_sizes,
    print_step_peaks,
    row,
    run_child,
    scratch_dir,
    step_seconds,
    with_step_peaks,
)

TOKEN = f"op-bench-{secrets.token_hex(8)}"  # a fake token for the server
EVENTS_PER_DAY = 10_000
SHARES = {"signinattempts": 0.3, "itemusages": 0.6, "auditevents": 0.1}
ENDPOINTS = ("signinattempts", "itemusages", "auditevents")
PAGE_LIMIT = 1000

BASELINE = """
import duckdb, orjson, pyarrow as pa, requests
session = requests.Session()
session.headers["Authorization"] = "Bearer {token}"
con = duckdb.connect({db!r})
total = 0
for feature in {endpoints!r}:
    body, schema = {{"limit": 1000, "start_time": "2020-01-01T00:00:00Z"}}, None
    while True:
        page = orjson.loads(session.post("{url}/api/v2/" + feature, json=body).content)
        items = page["items"]
        if items:
            create = schema is None
            if create:  # the first page's keys and types (all pages share one table)
                schema = pa.schema(list(pa.array(items).type))
            page_table = pa.Table.from_pylist(items, schema=schema)
            verb = "create table " + feature + " as" if create else "insert into " + feature
            con.execute(verb + " select * from page_table")
            total += len(items)
        if not page["has_more"]:
            break
        body = {{"cursor": page["cursor"]}}
con.close()
print(total)
"""

FETCH_ONLY = """
import orjson, requests
session = requests.Session()
session.headers["Authorization"] = "Bearer {token}"
total = 0
for feature in {endpoints!r}:
    body = {{"limit": 1000, "start_time": "2020-01-01T00:00:00Z"}}
    while True:
        page = orjson.loads(session.post("{url}/api/v2/" + feature, json=body).content)
        total += len(page["items"])
        if not page["has_more"]:
            break
        body = {{"cursor": page["cursor"]}}
print(total)
"""


class EventsPages:
    """The Events API over pre-rendered pages: a reset body gets a type's first page, a cursor
    the page after the one that returned it; the last page's cursor gets an empty last page."""

    def __init__(self, events: int, token: str) -> None:
        from simulators.onepassword_events import OnePasswordEventsSimulator

        rates = {feature: EVENTS_PER_DAY * share for feature, share in SHARES.items()}
        sim = OnePasswordEventsSimulator(
            seed=3,
            tokens={token: ENDPOINTS},
            users=500,
            events_per_day=rates,
            history_days=events / EVENTS_PER_DAY,
            rate_limits=(),
        )
        self.token = token
        self.account = sim.account_uuid
        self.date = formatdate(sim.now.timestamp(), usegmt=True)
        self.first: dict[str, bytes] = {}
        self.after: dict[tuple[str, str], bytes] = {}  # (feature, cursor) → the next page
        for feature in ENDPOINTS:
            reset = {"limit": PAGE_LIMIT, "start_time": "2020-01-01T00:00:00Z"}
            position = sim._position(feature, reset)
            previous = None
            while True:
                page = sim._page(feature, *position)
                body = json.dumps(page, separators=(",", ":")).encode()
                if previous is None:
                    self.first[feature] = body
                else:
                    self.after[(feature, previous)] = body
                previous = page["cursor"]
                if not page["has_more"]:
                    break
                position = sim._decode_cursor(feature, previous)
            last = {"cursor": previous, "has_more": False, "items": []}
            self.after[(feature, previous)] = json.dumps(last).encode()

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes]:
        """The status and body for one request."""
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, b'{"status": 401, "message": "Unauthorized"}'
        feature = target.rstrip("/").rsplit("/", 1)[-1]
        if method == "GET" and target == "/api/v2/auth/introspect":
            info = {"uuid": "BENCH", "features": list(ENDPOINTS), "account_uuid": self.account}
            return 200, json.dumps(info).encode()
        if method == "POST" and feature in self.first:
            cursor = json.loads(body or b"{}").get("cursor")
            page = self.first[feature] if cursor is None else self.after.get((feature, cursor))
            if page is not None:
                return 200, page
        return 400, b'{"status": 400, "message": "Bad Request"}'


def stored_events(db: Path) -> int:
    """Rows in the three dlt tables."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return sum(
            con.execute(f"select count(*) from onepassword_events.{table}").fetchone()[0]
            for table in ("signin_attempts", "item_usages", "audit_events")
        )


def bench(events: int, repeat: int, env: dict[str, str]) -> None:
    """Print the figures for one event count (each the fastest of `repeat` fresh runs)."""
    work = scratch_dir("posture-bench-op-")
    fetch, base, first = [], [], []
    with prebuilt_pages_process(partial(EventsPages, events, TOKEN)) as (url, _):
        env = {**env, "SOURCES__ONEPASSWORD_EVENTS__BASE_URL": url}
        for attempt in range(repeat):  # alternated, so a busy moment hits both paths alike
            fetch_code = FETCH_ONLY.format(token=TOKEN, url=url, endpoints=ENDPOINTS)
            fetch.append(run_child(fetch_code, env))
            db = str(work / f"baseline{attempt}.duckdb")
            base.append(
                run_child(BASELINE.format(token=TOKEN, url=url, db=db, endpoints=ENDPOINTS), env)
            )
            dlt_code = with_step_peaks(
                posture_program("--data-dir", str(work / f"dlt{attempt}"), "load", "onepassword")
            )
            first.append(run_child(dlt_code, env))
        served = int(base[0][2].split()[-1])
        last_db = work / f"dlt{repeat - 1}" / "posture.duckdb"
        stored = stored_events(last_db)
        disk = file_mb(last_db), file_mb(work / f"baseline{repeat - 1}.duckdb")
        again_s, again_mb, _ = run_child(dlt_code, env)  # the last warehouse, nothing new
        added = stored_events(last_db) - stored
    (fetch_s, fetch_mb, _), (base_s, base_mb, _), (dlt_s, dlt_mb, dlt_out) = (
        min(runs) for runs in (fetch, base, first)
    )
    print(f"{served:,} events over 1,000-item pages (data in {work}):")
    row(
        "fetch only: requests+orjson (server floor)",
        f"{fetch_s:.2f} s",
        f"{served / fetch_s:,.0f} ev/s",
        f"{fetch_mb:.0f} MB peak",
    )
    row(
        "baseline: requests+orjson+pyarrow+DuckDB",
        f"{base_s:.2f} s",
        f"{served / base_s:,.0f} ev/s",
        f"{base_mb:.0f} MB peak",
    )
    row(
        "posture load onepassword (whole process)",
        f"{dlt_s:.2f} s",
        f"{stored / dlt_s:,.0f} ev/s",
        f"{dlt_mb:.0f} MB peak",
    )
    print_step_peaks(dlt_out)
    print_file_sizes(*disk)
    row("aims for the load", "", ">= 20,000 ev/s", "< 400 MB peak")
    row("ratio (baseline s / load s)", f"{base_s / dlt_s:.2f}x")
    row(
        "posture load again, nothing new",
        f"{again_s:.2f} s",
        f"{added} added",
        f"{again_mb:.0f} MB peak",
    )


def bench_distant(events: int, latency: float, repeat: int, env: dict[str, str]) -> None:
    """Print the figures against a server `latency` seconds away (the fastest of `repeat`)."""
    work = scratch_dir("posture-bench-op-far-")
    fetch, load = [], []
    build = partial(EventsPages, events, TOKEN)
    with prebuilt_pages_process(build, latency) as (url, served):
        env = {**env, "SOURCES__ONEPASSWORD_EVENTS__BASE_URL": url}
        for attempt in range(repeat):
            before = served.value
            fetch_code = FETCH_ONLY.format(token=TOKEN, url=url, endpoints=ENDPOINTS)
            fetch.append((*run_child(fetch_code, env), served.value - before))
            before = served.value
            code = with_step_peaks(
                posture_program("--data-dir", str(work / f"dlt{attempt}"), "load", "onepassword")
            )
            load.append((*run_child(code, env), served.value - before))
        stored = stored_events(work / "dlt0" / "posture.duckdb")
    (fetch_s, _, fetch_out, fetch_requests), (load_s, load_mb, load_out, load_requests) = (
        min(runs) for runs in (fetch, load)
    )
    extract_s = step_seconds(load_out)["extract"]
    fetched = int(fetch_out.split()[-1])
    print(f"{fetched:,} events over 1,000-item pages, each request answered after {latency:g} s:")
    row(
        "fetch only, one request at a time",
        f"{fetch_s:.2f} s",
        f"{fetched / fetch_s:,.0f} ev/s",
        f"{fetch_requests} requests",
    )
    row(
        "posture load onepassword (whole process)",
        f"{load_s:.2f} s",
        f"{stored / load_s:,.0f} ev/s",
        f"{load_requests} requests, {load_mb:.0f} MB peak",
    )
    row(
        "  its extract steps (reading the vendor)",
        f"{extract_s:.2f} s",
        f"{stored / extract_s:,.0f} ev/s",
    )
    ceiling = 600 / 60 * PAGE_LIMIT
    in_order = PAGE_LIMIT / latency / max(SHARES.values())
    row("vendor's ceiling (600 requests a minute)", "", f"{ceiling:,.0f} ev/s")
    row("each type in cursor order, side by side", "", f"{min(in_order, ceiling):,.0f} ev/s")


def main() -> None:
    """Run the benchmark for each event count and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="*", default=[200_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each path; the best counts")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds a distant vendor takes")
    parser.add_argument("--latency-events", type=int, default=60_000)
    args = parser.parse_args()
    env = bench_env(SOURCES__ONEPASSWORD_EVENTS__TOKEN=TOKEN)
    unlimited = {**env, "SOURCES__ONEPASSWORD_EVENTS__RATE_LIMITS": "[[1000000, 1.0]]"}
    print(f"1Password Events benchmark (fresh process per run, python {sys.version.split()[0]})")
    for events in args.events:
        bench(events, args.repeat, unlimited)
    if args.latency_events:
        bench_distant(args.latency_events, args.latency, args.repeat, env)


if __name__ == "__main__":
    main()
