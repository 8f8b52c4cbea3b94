"""`posture demo` and `posture simulate`: the vendor simulators, driven day by day.

The demo runs the real path: each simulated day the simulators' clocks advance one day and every
source loads over HTTP into the working DuckDB file; then dbt builds the models and the warehouse
is published. Tokens are random per run, so no credential is ever written down.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from warehouse.location import DATA_DIR_ENV, WarehouseLocation

DEMO_DATA_DIR = Path("data") / "demo"


@dataclass(frozen=True)
class DemoVendor:
    """How the demo runs one vendor: its simulator and the source config that points at it."""

    source: str  # name in pipelines.registry.SOURCES
    make_simulator: Callable[[int, int, str], Any]  # (users, seed, token) -> VendorSimulator
    env: Callable[[str, str], dict[str, str]]  # (base_url, token) -> source config


def _keeper(users: int, seed: int, token: str) -> Any:
    from simulators.keeper_rmd import KeeperRmdSimulator

    return KeeperRmdSimulator(users=users, seed=seed, tokens=(token,))


def _trend(users: int, seed: int, token: str) -> Any:
    from simulators.trend_audit import TrendAuditSimulator

    return TrendAuditSimulator(
        accounts=("310442718012", "529901334417"), seed=seed, api_keys={token: None}
    )


def _onepassword(users: int, seed: int, token: str) -> Any:
    from simulators.onepassword_events import FEATURES, OnePasswordEventsSimulator

    people = max(10, users // 5)  # the 1Password account is a smaller team than Keeper's
    return OnePasswordEventsSimulator(seed=seed, tokens={token: FEATURES}, users=people)


DEMO_VENDORS = (
    DemoVendor(
        "keeper",
        _keeper,
        lambda url, token: {
            "SOURCES__KEEPER_RMD__BASE_URL": url,
            "SOURCES__KEEPER_RMD__API_TOKEN": token,
            "SOURCES__KEEPER_RMD__TENANT": "acme-keeper",
        },
    ),
    DemoVendor(
        "trend",
        _trend,
        lambda url, token: {
            "SOURCES__TREND_AUDIT__BASE_URL": url,
            "SOURCES__TREND_AUDIT__API_KEY": token,
        },
    ),
    DemoVendor(
        "onepassword",
        _onepassword,
        lambda url, token: {
            "SOURCES__ONEPASSWORD_EVENTS__BASE_URL": url,
            "SOURCES__ONEPASSWORD_EVENTS__TOKEN": token,
            "SOURCES__ONEPASSWORD_EVENTS__TENANT": "acme-1password",
        },
    ),
)


@contextmanager
def running_simulators(users: int, seed: int, port: int = 0) -> Iterator[list[tuple]]:
    """Start every demo simulator; yields (vendor, server, env) triples and stops them after."""
    from simulators.server import SimulatorServer

    with ExitStack() as stack:
        running = []
        for offset, vendor in enumerate(DEMO_VENDORS):
            token = os.environ.get("POSTURE_SIM_TOKEN") or secrets.token_urlsafe(24)
            server = SimulatorServer(
                vendor.make_simulator(users, seed, token), port=port + offset if port else 0
            )
            stack.enter_context(server)
            running.append((vendor, server, vendor.env(server.url, token)))
        yield running


def run_demo(days: int, users: int, seed: int) -> None:
    """Simulate `days` days through load, dbt and publish; print the last week's KPIs."""
    from cli.evidence import write_evidence
    from cli.report import write_report
    from cli.scope import Period
    from cli.steps import load_source, print_kpis, publish_step, transform

    data_dir = Path(os.environ.get(DATA_DIR_ENV) or DEMO_DATA_DIR)
    if data_dir.exists():
        shutil.rmtree(data_dir)  # the demo always starts from an empty warehouse
    location = WarehouseLocation(data_dir.resolve()).ensure()
    started = time.perf_counter()
    with running_simulators(users, seed) as running:
        for _vendor, _server, env in running:
            os.environ.update(env)
        first_day = running[0][1].simulator.now.date()
        for day in range(1, days + 1):
            if day > 1:
                for _vendor, server, _env in running:
                    server.simulator.advance(days=1)
            day_started = time.perf_counter()
            for vendor, _server, _env in running:
                load_source(vendor.source, location, quiet=True)
            clock = running[0][1].simulator.now.date().isoformat()
            print(
                f"day {day:>3}/{days} ({clock}): loaded "
                f"{', '.join(v.source for v, _, _ in running)} in "
                f"{time.perf_counter() - day_started:.1f} s",
                flush=True,
            )
    print("building models (dbt build) ...", flush=True)
    transform(location, quiet=True)
    publish_step(location)
    print(f"\nDaily posture, last 7 of {days} simulated days:")
    print_kpis(location, days=7)
    report = write_report(location, location.data_dir / "report.html")
    period = Period(first_day, first_day + timedelta(days=days - 1))
    evidence = write_evidence(location, location.data_dir / "evidence", period)
    print(f"\nreport: {report}\nevidence pack: {evidence}")
    command = os.path.relpath(sys.argv[0]) if sys.argv[0].endswith("posture") else "posture"
    print(
        f"\ndemo finished in {time.perf_counter() - started:.0f} s. Explore it:\n"
        f"  {command} --data-dir {data_dir} kpis --days 30\n"
        f'  {command} --data-dir {data_dir} sql "select * from marts.fct_daily_posture limit 5"\n'
        f"  or open {location.published_db} read-only in any DuckDB client"
    )


def serve_simulators(port: int, users: int, seed: int) -> None:
    """Serve every simulator until interrupted, printing how to point the sources at them."""
    with running_simulators(users, seed, port=port) as running:
        for vendor, server, env in running:
            print(f"{vendor.source}: {server.url}")
            for key, value in env.items():
                print(f"  export {key}={value}")
        print("advance a clock: curl -X POST <url>/_sim/advance -d '{\"days\": 1}'")
        print("Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
