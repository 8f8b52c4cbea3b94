"""`posture demo` and `posture simulate`: the vendor simulators, driven day by day.

The demo runs the real path: two organisations with one tenant of each vendor apiece, each its
own simulator with its own data and token, named by a configuration file written beside the
warehouse. Each simulated day the simulators' clocks advance one day and every tenant loads over
HTTP into the working DuckDB file; then dbt builds the models and the warehouse is published.
Tokens are random per run and live only in environment variables, so no credential is ever
written down.
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


# The demo's two organisations, each with one tenant of every vendor: (organisation, its share
# of the demo's users, the Cloud One account id its key reads).
DEMO_ORGANISATIONS = (("acme", 1.0, "310442718012"), ("globex", 0.4, "529901334417"))


@dataclass(frozen=True)
class DemoTenant:
    """One simulated tenant: its organisation, vendor, name and simulator."""

    organisation: str
    source: str  # name in pipelines.registry.SOURCES
    name: str
    make_simulator: Callable[[int, int, str], Any]  # (users, seed, token) -> VendorSimulator

    @property
    def token_env(self) -> str:
        """The environment variable the demo's configuration file names for its token."""
        return "POSTURE_DEMO_" + self.name.upper().replace("-", "_") + "_TOKEN"


def _keeper(domain: str) -> Callable[[int, int, str], Any]:
    def make(users: int, seed: int, token: str) -> Any:
        from simulators.keeper_rmd import KeeperRmdSimulator

        return KeeperRmdSimulator(users=users, seed=seed, tokens=(token,), domain=domain)

    return make


def _trend(account: str) -> Callable[[int, int, str], Any]:
    def make(users: int, seed: int, token: str) -> Any:
        from simulators.trend_audit import TrendAuditSimulator

        return TrendAuditSimulator(accounts=(account,), seed=seed, api_keys={token: account})

    return make


def _onepassword(account_uuid: str) -> Callable[[int, int, str], Any]:
    def make(users: int, seed: int, token: str) -> Any:
        from simulators.onepassword_events import FEATURES, OnePasswordEventsSimulator

        people = max(10, users // 5)  # the 1Password account is a smaller team than Keeper's
        return OnePasswordEventsSimulator(
            account_uuid=account_uuid, seed=seed, tokens={token: FEATURES}, users=people
        )

    return make


DEMO_TENANTS = tuple(
    tenant
    for organisation, _, account in DEMO_ORGANISATIONS
    for tenant in (
        DemoTenant(
            organisation, "keeper", f"{organisation}-keeper", _keeper(f"{organisation}.example")
        ),
        DemoTenant(organisation, "trend", f"{organisation}-cloudone", _trend(account)),
        DemoTenant(
            organisation,
            "onepassword",
            f"{organisation}-1password",
            _onepassword(f"{organisation.upper()}ACCOUNT".ljust(26, "0")),
        ),
    )
)


def demo_config(running: list[tuple[DemoTenant, Any, str]]) -> str:
    """The configuration file (TOML) naming every running tenant; tokens stay in the
    environment variables it names."""
    blocks = [
        f"[[organisations.{tenant.organisation}.{tenant.source}]]\n"
        f'tenant = "{tenant.name}"\nbase_url = "{server.url}"\n'
        f'token_env = "{tenant.token_env}"\n'
        for tenant, server, _token in running
    ]
    return "\n".join(blocks)


@contextmanager
def running_simulators(
    users: int, seed: int, port: int = 0
) -> Iterator[list[tuple[DemoTenant, Any, str]]]:
    """Start every demo tenant's simulator (other data per tenant); yields (tenant, server,
    token) triples and stops them after."""
    from simulators.server import SimulatorServer

    shares = {organisation: share for organisation, share, _ in DEMO_ORGANISATIONS}
    with ExitStack() as stack:
        running = []
        for offset, tenant in enumerate(DEMO_TENANTS):
            token = os.environ.get("POSTURE_SIM_TOKEN") or secrets.token_urlsafe(24)
            tenant_users = max(10, int(users * shares[tenant.organisation]))
            simulator = tenant.make_simulator(tenant_users, seed + offset, token)
            server = SimulatorServer(simulator, port=port + offset if port else 0)
            stack.enter_context(server)
            running.append((tenant, server, token))
        yield running


def run_demo(days: int, users: int, seed: int) -> None:
    """Simulate `days` days through load, dbt and publish; print the last week's KPIs."""
    from cli.evidence import write_evidence
    from cli.report import write_report
    from cli.scope import Period
    from cli.steps import load_source, print_kpis, publish_step, transform
    from pipelines.registry import SOURCES
    from pipelines.tenants import CONFIG_ENV, tenants_to_load

    data_dir = Path(os.environ.get(DATA_DIR_ENV) or DEMO_DATA_DIR)
    if data_dir.exists():
        shutil.rmtree(data_dir)  # the demo always starts from an empty warehouse
    location = WarehouseLocation(data_dir.resolve()).ensure()
    started = time.perf_counter()
    config = location.data_dir / "posture.toml"
    with running_simulators(users, seed) as running:
        config.write_text(demo_config(running))
        os.environ[CONFIG_ENV] = str(config)
        os.environ.update({tenant.token_env: token for tenant, _, token in running})
        first_day = running[0][1].simulator.now.date()
        for day in range(1, days + 1):
            if day > 1:
                for _tenant, server, _token in running:
                    server.simulator.advance(days=1)
            day_started = time.perf_counter()
            for tenant in tenants_to_load(list(SOURCES)):
                load_source(tenant, location, quiet=True)
            clock = running[0][1].simulator.now.date().isoformat()
            print(
                f"day {day:>3}/{days} ({clock}): loaded {len(running)} tenants of "
                f"{len(DEMO_ORGANISATIONS)} organisations in "
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
        print("# posture.toml (point POSTURE_CONFIG at it):\n")
        print(demo_config(running))
        for tenant, server, token in running:
            print(f"export {tenant.token_env}={token}  # {tenant.source} at {server.url}")
        print("advance a clock: curl -X POST <url>/_sim/advance -d '{\"days\": 1}'")
        print("Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
