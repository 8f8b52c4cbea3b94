"""1Password Events benchmark: prints figures (nothing is asserted).

    python bench/bench_onepassword.py [--events 50000 200000]

For each event count, a simulator in its own process (rate limit lifted) serves sign-in
attempts, item usages and audit events in pages of 1,000. Each of these runs in a fresh process
and reports seconds, events per second and its own peak RSS:
- fetch only: requests + orjson, nothing stored (how fast the simulator serves: the floor);
- baseline: requests + orjson + `pyarrow.Table.from_pylist` (nested structs) + DuckDB insert,
  the hand-written path;
- the dlt source, run by `posture load onepassword` (flattened typed columns, `raw`,
  merge on `uuid`, in parts of about 250,000 events, the three types together);
- the dlt source again with nothing new (cursor kept: nothing is added).
The ratio is baseline seconds / dlt seconds (1.0 = as fast as the hand-written path). Each figure
is the fastest of `--repeat` runs (the machine may be shared); its peak memory is that run's.
The simulator lifts its rate limit, but the source still keeps 1Password's 600 requests a minute,
as it must with the vendor: past about 600 pages (600,000 events) in a minute its runs wait for
the limit and the baseline does not, so such counts measure the limit, not the loader.
"""

from __future__ import annotations

import argparse
import functools
import secrets
import sys
from pathlib import Path

from common import bench_env, posture_program, row, run_child, scratch_dir, simulator_process

TOKEN = f"op-bench-{secrets.token_hex(8)}"  # a fake token for the simulator
EVENTS_PER_DAY = 10_000
SHARES = {"signinattempts": 0.3, "itemusages": 0.6, "auditevents": 0.1}
ENDPOINTS = ("signinattempts", "itemusages", "auditevents")

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


def make_simulator(events: int, token: str):
    """A simulator holding about `events` events over whole days (module level so it pickles)."""
    from simulators.onepassword_events import OnePasswordEventsSimulator

    rates = {feature: EVENTS_PER_DAY * share for feature, share in SHARES.items()}
    return OnePasswordEventsSimulator(
        seed=3,
        tokens={token: ENDPOINTS},
        users=500,
        events_per_day=rates,
        history_days=events / EVENTS_PER_DAY,
        rate_limits=(),
    )


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
    with simulator_process(functools.partial(make_simulator, events, TOKEN)) as url:
        env = {**env, "SOURCES__ONEPASSWORD_EVENTS__BASE_URL": url}
        for attempt in range(repeat):  # alternated, so a busy moment hits both paths alike
            fetch_code = FETCH_ONLY.format(token=TOKEN, url=url, endpoints=ENDPOINTS)
            fetch.append(run_child(fetch_code, env))
            db = str(work / f"baseline{attempt}.duckdb")
            base.append(
                run_child(BASELINE.format(token=TOKEN, url=url, db=db, endpoints=ENDPOINTS), env)
            )
            dlt_code = posture_program(
                "--data-dir", str(work / f"dlt{attempt}"), "load", "onepassword"
            )
            first.append(run_child(dlt_code, env))
        served = int(base[0][2].split()[-1])
        last_db = work / f"dlt{repeat - 1}" / "posture.duckdb"
        stored = stored_events(last_db)
        again_s, again_mb, _ = run_child(dlt_code, env)  # the last warehouse, nothing new
        added = stored_events(last_db) - stored
    (fetch_s, fetch_mb, _), (base_s, base_mb, _), (dlt_s, dlt_mb, _) = (
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
        "dlt source (posture load)",
        f"{dlt_s:.2f} s",
        f"{stored / dlt_s:,.0f} ev/s",
        f"{dlt_mb:.0f} MB peak",
    )
    row("ratio (baseline s / dlt s)", f"{base_s / dlt_s:.2f}x", "target >= 0.7x", "target < 300 MB")
    row(
        "dlt second run, nothing new",
        f"{again_s:.2f} s",
        f"{added} added",
        f"{again_mb:.0f} MB peak",
    )


def main() -> None:
    """Run the benchmark for each event count and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each path; the best counts")
    args = parser.parse_args()
    env = bench_env(SOURCES__ONEPASSWORD_EVENTS__TOKEN=TOKEN)
    print(f"1Password Events benchmark (fresh process per run, python {sys.version.split()[0]})")
    for events in args.events:
        bench(events, args.repeat, env)


if __name__ == "__main__":
    main()
