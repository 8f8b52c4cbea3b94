"""Trend Micro Cloud One audit log benchmark: prints figures (nothing is asserted).

    python bench/bench_trend.py [--events 200000] [--repeat 1]

For each event count, the simulator's log (30 days, newest first, 25 logs a page) is rendered
into pages once, before anything is timed, and served as ready bytes by a small server in its
own process (`GET /api/logs` with `cursor`), so what is measured is the client, not the server.
Each of these runs in a fresh process and reports seconds, events per second and its own peak
RSS:
- fetch only: requests + orjson, nothing stored (how fast the server answers: the floor);
- baseline: requests + orjson + pyarrow tables of 10,000 rows + DuckDB insert, the hand-written
  path;
- `posture load trend`, the whole process (typed columns and `raw`, merged insert-only on
  tenant + id, in runs of at most 50,000 events), and its peak in each of dlt's steps (extract,
  normalize, load; `other` for imports, setup and what lies between),
  and the size of the warehouse file it leaves (beside the baseline's);
- the same again with nothing new (it stops after the first pages).
Each figure is the fastest of `--repeat` runs (the machine may be shared); its peak memory is
that run's. Aims (1Password's, relative to the baseline): the load at least 0.3x the baseline's
events/s, peak under 400 MB, and a run with nothing new under 2 s.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Mapping
from email.utils import format_datetime
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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
    with_step_peaks,
)

KEY = f"trend-bench-{secrets.token_hex(8)}"  # a fake API key for the server
HISTORY_DAYS = 30

FETCH_ONLY = """
import orjson, requests
session = requests.Session()
session.headers.update({{"Api-Version": "v1", "Authorization": "ApiKey {key}"}})
params, total = {{"limit": 25}}, 0
while True:
    body = orjson.loads(session.get("{url}/api/logs", params=params).content)
    total += len(body["logs"])
    if "next" not in body:
        break
    params = {{"limit": 25, "cursor": body["next"]}}
print(total)
"""

BASELINE = """
import duckdb, orjson, pyarrow as pa, requests
session = requests.Session()
session.headers.update({{"Api-Version": "v1", "Authorization": "ApiKey {key}"}})
con = duckdb.connect({db!r})
con.execute(
    "create table audit_logs (id varchar primary key, time timestamptz, type varchar, "
    "description varchar, account_id varchar, principal_urn varchar, details varchar, "
    "raw varchar)"
)
names = ("id", "time", "type", "description", "accountID", "principalURN")
columns = {{name: [] for name in (*names, "details", "raw")}}

def flush():
    batch = pa.table({{name: pa.array(values, pa.string()) for name, values in columns.items()}})
    con.execute("insert into audit_logs select id, cast(time as timestamptz), type, "
                "description, accountID, principalURN, details, raw from batch")
    for values in columns.values():
        values.clear()

params, total = {{"limit": 25}}, 0
while True:
    body = orjson.loads(session.get("{url}/api/logs", params=params).content)
    for log in body["logs"]:
        for name in names:
            columns[name].append(log.get(name))
        columns["details"].append(orjson.dumps(log.get("details")).decode())
        columns["raw"].append(orjson.dumps(log).decode())
    total += len(body["logs"])
    if len(columns["id"]) >= 10_000:
        flush()
    if "next" not in body:
        break
    params = {{"limit": 25, "cursor": body["next"]}}
flush()
con.close()
print(total)
"""


class AuditLogPages:
    """The audit log over pre-rendered pages: no cursor gets the first page (newest first), a
    cursor the page it names; every answer carries the simulator's clock as `Date`."""

    def __init__(self, events: int, key: str) -> None:
        from simulators.server import Request
        from simulators.trend_audit import TrendAuditSimulator

        sim = TrendAuditSimulator(
            events_per_day=events / HISTORY_DAYS, history_days=HISTORY_DAYS, api_keys={key: None}
        )
        self.authorization = f"ApiKey {key}"
        self.date = format_datetime(sim.now, usegmt=True)
        self.pages: dict[str | None, bytes] = {}  # cursor (None: the first page) -> body
        headers = {"api-version": "v1", "authorization": self.authorization}
        cursor: str | None = None
        while True:
            query = {"limit": "25", **({"cursor": cursor} if cursor else {})}
            page = sim.handle(Request("GET", "/api/logs", query, headers, b"")).payload
            self.pages[cursor] = json.dumps(page, separators=(",", ":")).encode()
            cursor = page.get("next")
            if cursor is None:
                break

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes]:
        """The status and body for one request."""
        if headers.get("Authorization") != self.authorization:
            return 401, b'{"message": "Invalid API key"}'
        request_url = urlsplit(target)
        cursor = parse_qs(request_url.query).get("cursor", [None])[-1]
        found = method == "GET" and request_url.path == "/api/logs"
        page = self.pages.get(cursor) if found else None
        return (200, page) if page is not None else (400, b'{"message": "Invalid cursor"}')


def stored_events(db: Path) -> int:
    """Rows in the source's table."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select count(*) from trend_audit.audit_logs").fetchone()[0]


def bench(events: int, repeat: int, env: dict[str, str]) -> None:
    """Print the figures for one event count (each the fastest of `repeat` fresh runs)."""
    work = scratch_dir("posture-bench-trend-")
    fetch, base, first = [], [], []
    with prebuilt_pages_process(partial(AuditLogPages, events, KEY)) as (url, served):
        env = {**env, "SOURCES__TREND_AUDIT__BASE_URL": url}
        for attempt in range(repeat):  # alternated, so a busy moment hits both paths alike
            fetch.append(run_child(FETCH_ONLY.format(key=KEY, url=url), env))
            db = str(work / f"baseline{attempt}.duckdb")
            base.append(run_child(BASELINE.format(key=KEY, url=url, db=db), env))
            dlt_code = with_step_peaks(
                posture_program("--data-dir", str(work / f"dlt{attempt}"), "load", "trend")
            )
            first.append(run_child(dlt_code, env))
        read = int(base[0][2].split()[-1])
        last_db = work / f"dlt{repeat - 1}" / "posture.duckdb"
        stored = stored_events(last_db)
        disk = file_mb(last_db), file_mb(work / f"baseline{repeat - 1}.duckdb")
        before = served.value
        again_s, again_mb, _ = run_child(dlt_code, env)  # the last warehouse, nothing new
        again_requests = served.value - before
        added = stored_events(last_db) - stored
    (fetch_s, fetch_mb, _), (base_s, base_mb, _), (dlt_s, dlt_mb, dlt_out) = (
        min(runs) for runs in (fetch, base, first)
    )
    print(f"{read:,} events over 25-log pages (data in {work}):")
    row(
        "fetch only: requests+orjson (server floor)",
        f"{fetch_s:.2f} s",
        f"{read / fetch_s:,.0f} ev/s",
        f"{fetch_mb:.0f} MB peak",
    )
    row(
        "baseline: requests+orjson+pyarrow+DuckDB",
        f"{base_s:.2f} s",
        f"{read / base_s:,.0f} ev/s",
        f"{base_mb:.0f} MB peak",
    )
    row(
        "posture load trend (whole process)",
        f"{dlt_s:.2f} s",
        f"{stored / dlt_s:,.0f} ev/s",
        f"{dlt_mb:.0f} MB peak",
    )
    print_step_peaks(dlt_out)
    print_file_sizes(*disk)
    row("aims for the load", "", ">= 0.3x baseline", "< 400 MB peak")
    row("ratio (baseline s / load s)", f"{base_s / dlt_s:.2f}x")
    row(
        "posture load again, nothing new",
        f"{again_s:.2f} s",
        "aim < 2 s",
        f"{again_requests} requests, {added} added, {again_mb:.0f} MB peak",
    )


def main() -> None:
    """Run the benchmark for each event count and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[200_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path; the best counts")
    args = parser.parse_args()
    env = bench_env(SOURCES__TREND_AUDIT__API_KEY=KEY)
    version = sys.version.split()[0]
    print(f"Trend Micro Cloud One benchmark (fresh process per run, python {version})")
    for events in args.events:
        bench(events, args.repeat, env)


if __name__ == "__main__":
    main()
