"""Keeper RMD benchmark: prints figures for a 10,000-user enterprise (nothing is asserted).

    python bench/bench_keeper.py [--users 10000] [--days 90]

Measures, each beside a baseline from the same run:
- one daily `posture load keeper` (seconds, peak memory, a fresh process) vs fetching the same
  endpoints with requests + orjson and nothing else;
- `dbt build` over `--days` daily snapshots;
- a KPI query on the published file (median of 20) vs `select 1`;
- `posture --help` start-up (median of 5) vs a bare `python -c pass`.
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import requests
from common import (
    bench_env,
    median_seconds,
    posture_program,
    row,
    run_child,
    scratch_dir,
    simulator_process,
)

TOKEN = secrets.token_urlsafe(16)
KPI_QUERY = (
    "select * from marts.fct_keeper_daily_kpis where tenant = 'bench' "
    "order by snapshot_date desc limit 30"
)


def make_simulator(users: int, token: str):
    """The simulator the benchmark serves (module level so it pickles)."""
    from simulators.keeper_rmd import KeeperRmdSimulator

    return KeeperRmdSimulator(users=users, seed=1, tokens=(token,))


def advance(url: str) -> None:
    requests.post(f"{url}/_sim/advance", json={"days": 1}, timeout=60).raise_for_status()


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    data_dir = scratch_dir("posture-bench-")
    env = bench_env(
        POSTURE_DATA_DIR=str(data_dir),
        SOURCES__KEEPER_RMD__API_TOKEN=TOKEN,
        SOURCES__KEEPER_RMD__TENANT="bench",
    )
    print(f"Keeper RMD benchmark: {args.users} users, {args.days} days, data in {data_dir}")
    with simulator_process(functools.partial(make_simulator, args.users, TOKEN)) as url:
        env["SOURCES__KEEPER_RMD__BASE_URL"] = url
        os.environ.update(env)
        raw = run_child(
            "import requests, orjson\n"
            f"s = requests.Session(); s.headers['x-api-token'] = 'Bearer {TOKEN}'\n"
            "for p in ('get_enterprise_stat', 'get_enterprise_stat_details',"
            " 'get_security_alerts_summary', 'get_security_benchmarks'):\n"
            f"    orjson.loads(s.get('{url}/api/rest/rmd/' + p).content)\n",
            env,
        )
        load_code = posture_program("load", "keeper")
        first = run_child(load_code, env)
        advance(url)
        second = run_child(load_code, env)
        print("one daily load (fresh process each, includes interpreter and imports):")
        row(
            "dlt load, first day (creates tables)",
            f"{first[0]:.2f} s",
            "",
            f"{first[1]:.0f} MB peak",
        )
        row("dlt load, next day", f"{second[0]:.2f} s", "target < 3 s", f"{second[1]:.0f} MB peak")
        row(
            "baseline: requests + orjson, no storage",
            f"{raw[0]:.2f} s",
            "",
            f"{raw[1]:.0f} MB peak",
        )
        from cli.steps import load_source, publish_step, transform
        from warehouse.location import current_location

        location = current_location()
        started = time.perf_counter()
        for day in range(3, args.days + 1):
            advance(url)
            load_source("keeper", location, quiet=True)
            if day % 10 == 0:
                print(f"  ... {day}/{args.days} days loaded", flush=True)
        in_process = (time.perf_counter() - started) / max(1, args.days - 2)
        row("dlt load, warm process (mean of the rest)", f"{in_process:.2f} s", "target < 3 s")
    started = time.perf_counter()
    transform(location, quiet=True)
    build = time.perf_counter() - started
    row(f"dbt build over {args.days} days", f"{build:.1f} s", "target < 30 s")
    publish_step(location, quiet=True)
    import duckdb

    with duckdb.connect(str(location.published_db), read_only=True) as con:
        kpi = median_seconds(lambda: con.execute(KPI_QUERY).fetchall(), 20)
        one = median_seconds(lambda: con.execute("select 1").fetchall(), 20)
        (rows,) = con.execute("select count(*) from keeper_rmd.enterprise_stat_details").fetchone()
    row(
        "KPI query on the published file",
        f"{kpi * 1000:.1f} ms",
        "target < 50 ms",
        f"select 1: {one * 1000:.2f} ms",
    )
    print(f"  ({rows} user-day rows in the warehouse)")
    posture = [sys.executable, "-m", "cli.main", "--help"]
    bare = [sys.executable, "-c", "pass"]
    cwd = Path(__file__).resolve().parent.parent
    help_s = median_seconds(
        lambda: subprocess.run(posture, capture_output=True, cwd=cwd, check=True), 5
    )
    bare_s = median_seconds(lambda: subprocess.run(bare, capture_output=True, check=True), 5)
    row("posture --help", f"{help_s:.3f} s", "target < 0.3 s", f"python -c pass: {bare_s:.3f} s")


if __name__ == "__main__":
    main()
