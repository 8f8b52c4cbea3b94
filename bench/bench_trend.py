"""Trend Micro Cloud One audit log benchmark: prints figures, asserts nothing.

    python bench/bench_trend.py [--events 50000 200000]

For each size, a simulator holding that many events (30 days, newest first) is served from its
own process, and each measurement runs in a fresh process (its own peak memory):
- baseline: a hand-written loader (requests.Session, orjson, pyarrow tables of 10,000 rows,
  DuckDB insert) walking the same log;
- the dlt source, run by `posture load trend` (Arrow batches, parquet, merge on tenant + id,
  in parts of at most 50,000 events, so memory should stay flat as the count grows);
- the dlt source again with nothing new (seconds and requests).
"Load s" is the work after the loader's own imports (dlt's are part of the command, so they
count in its load s); "process s" adds interpreter start-up and all imports.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import requests
from common import bench_env, posture_program, row, run_child, scratch_dir, simulator_process

KEY = "fake-bench-trend-key"
HISTORY_DAYS = 30

BASELINE = """
import time
import duckdb, orjson, pyarrow as pa, requests
imported = time.perf_counter()
session = requests.Session()
session.headers.update({"Api-Version": "v1", "Authorization": "ApiKey " + KEY})
con = duckdb.connect(DB)
con.execute(
    "create table audit_logs (id varchar primary key, time timestamptz, type varchar, "
    "description varchar, account_id varchar, principal_urn varchar, details varchar, "
    "raw varchar)"
)
names = ("id", "time", "type", "description", "accountID", "principalURN")
columns = {name: [] for name in (*names, "details", "raw")}

def flush():
    batch = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    con.execute("insert into audit_logs select id, cast(time as timestamptz), type, "
                "description, accountID, principalURN, details, raw from batch")
    for values in columns.values():
        values.clear()

params = {"limit": 25}
events = 0
while True:
    body = orjson.loads(session.get(URL + "/api/logs", params=params).content)
    for log in body["logs"]:
        for name in names:
            columns[name].append(log.get(name))
        columns["details"].append(orjson.dumps(log.get("details")).decode())
        columns["raw"].append(orjson.dumps(log).decode())
    events += len(body["logs"])
    if len(columns["id"]) >= 10_000:
        flush()
    if "next" not in body:
        break
    params = {"limit": 25, "cursor": body["next"]}
flush()
con.close()
print(json.dumps({"load": time.perf_counter() - imported, "events": events}))
"""

DLT = f"""
import time
imported = time.perf_counter()
{posture_program("load", "trend")}
import duckdb
with duckdb.connect(DB, read_only=True) as con:
    (events,) = con.execute("select count(*) from trend_audit.audit_logs").fetchone()
print(json.dumps({{"load": time.perf_counter() - imported, "events": events}}))
"""


def make_simulator(events: int):
    """The simulator the benchmark serves (module level so it pickles)."""
    from simulators.trend_audit import TrendAuditSimulator

    return TrendAuditSimulator(
        events_per_day=events / HISTORY_DAYS, history_days=HISTORY_DAYS, api_keys={KEY: None}
    )


def requests_served(url: str) -> int:
    return requests.get(f"{url}/_sim/state", timeout=60).json()["requests"]


def measure(code: str, url: str, db: Path, env: dict[str, str]) -> dict[str, float]:
    """Run a loader in a fresh process; its load seconds, process seconds, peak MB, requests."""
    before = requests_served(url)
    header = f"import json\nURL = {url!r}\nKEY = {KEY!r}\nDB = {str(db)!r}\n"
    seconds, peak_mb, out = run_child(header + code, env)
    result = json.loads(out.splitlines()[-1])
    result.update(process=seconds, peak=peak_mb, requests=requests_served(url) - before)
    return result


def bench(events: int, env: dict[str, str]) -> None:
    """Print the figures for a log of `events` events."""
    data_dir = scratch_dir("posture-bench-trend-")
    env = {**env, "POSTURE_DATA_DIR": str(data_dir)}
    print(f"\n{events:,} events ({HISTORY_DAYS} days, 25 a page), data in {data_dir}", flush=True)
    with simulator_process(functools.partial(make_simulator, events)) as url:
        env = {**env, "SOURCES__TREND_AUDIT__BASE_URL": url, "SOURCES__TREND_AUDIT__API_KEY": KEY}
        base = measure(BASELINE, url, data_dir / "baseline.duckdb", env)
        first = measure(DLT, url, data_dir / "posture.duckdb", env)
        again = measure(DLT, url, data_dir / "posture.duckdb", env)
    for label, result in (("baseline: requests+orjson+pyarrow+duckdb", base), ("dlt", first)):
        rate = result["events"] / result["load"]
        row(
            f"{label}, first load",
            f"{result['load']:.2f} s",
            f"{rate:,.0f} ev/s",
            f"{result['peak']:.0f} MB peak, process {result['process']:.2f} s, "
            f"{result['requests']} requests, {result['events']:,} rows",
        )
    row(
        "dlt / baseline speed (load s; process s)",
        f"{base['load'] / first['load']:.2f}x",
        "target >= 0.7x",
        f"{base['process'] / first['process']:.2f}x",
    )
    row(
        "dlt, second run with nothing new",
        f"{again['load']:.2f} s",
        f"{again['requests']} requests",
        f"{again['peak']:.0f} MB peak, process {again['process']:.2f} s, {again['events']:,} rows",
    )


def main() -> None:
    """Run the benchmark for each size and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[50_000, 200_000])
    args = parser.parse_args()
    env = bench_env()
    print("Trend Micro Cloud One audit log benchmark (each loader in a fresh process)")
    for events in args.events:
        bench(events, env)


if __name__ == "__main__":
    main()
