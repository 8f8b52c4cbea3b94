"""Keeper end to end: days of snapshots -> dbt build -> published KPIs, and the demo itself."""

from __future__ import annotations

import duckdb

from cli.main import main
from cli.steps import load_source, publish_step, transform
from simulators.server import SimulatorServer
from tests.test_keeper_source import TENANTS_WITH_SQL_CHARACTERS


def published(location, sql: str) -> list[tuple]:
    with duckdb.connect(str(location.published_db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_history_becomes_kpis_with_a_resolved_benchmark(
    keeper_env: SimulatorServer, location, monkeypatch
):
    sim = keeper_env.simulator
    benchmark = next(
        b
        for b in ("SB_CREATE_ALERTS", "SB_CONFIGURE_IP_ALLOWLISTING", "SB_DISABLE_ACCOUNT_RECOVERY")
        if sim.benchmark(b)["status"] == "UNRESOLVED"
    )
    for day in range(1, 5):
        if day > 1:
            sim.advance(days=1)
        if day == 2:  # a GRC lead resolves a benchmark mid-morning
            sim.advance(hours=2)
            assert main(["benchmarks", "set", benchmark, "RESOLVED"]) == 0
        if day == 3:  # the vendor starts sending a field nobody has seen
            sim.faults.update(extra_field=True)
        load_source("keeper", location, quiet=True)
    # The last day also has tenants whose names hold SQL's characters: no model or publish
    # step may put a tenant name into SQL text.
    for tenant in TENANTS_WITH_SQL_CHARACTERS:
        monkeypatch.setenv("SOURCES__KEEPER_RMD__TENANT", tenant)
        load_source("keeper", location, quiet=True)
    transform(location, quiet=True)
    publish_step(location, quiet=True)
    others = published(
        location,
        "select tenant, snapshot_date, total_users from marts.fct_keeper_daily_kpis "
        "where tenant <> 'acme'",
    )
    last_day = sim.now.date()
    assert sorted(others) == sorted(
        (tenant, last_day, sim.user_count()) for tenant in TENANTS_WITH_SQL_CHARACTERS
    )

    kpis = published(
        location,
        "select snapshot_date, total_users, login_coverage, users_logged_recent, "
        "login_crosscheck_diff, vault_crosscheck_diff from marts.fct_keeper_daily_kpis "
        "where tenant = 'acme' order by 1",
    )
    assert len(kpis) == 4
    assert kpis[-1][1] == sim.user_count()
    for _, total, coverage, recent, login_diff, vault_diff in kpis:
        assert abs(coverage - recent / total) < 1e-9
        assert login_diff == 0 and vault_diff == 0  # API and details agree

    ((status, resolved_at, days_to_resolve),) = published(
        location,
        "select current_status, resolved_at, days_to_resolve "
        "from marts.fct_keeper_benchmark_remediation "
        f"where tenant = 'acme' and benchmark_id = '{benchmark}'",
    )
    assert status == "RESOLVED"
    assert resolved_at.strftime("%Y-%m-%d %H:%M:%S") == sim.benchmark(benchmark)["last_updated"]
    assert days_to_resolve == 1

    changes = published(
        location,
        "select from_status, to_status, is_resolution from "
        "marts.fct_keeper_benchmark_status_changes "
        f"where tenant = 'acme' and benchmark_id = '{benchmark}'",
    )
    assert ("UNRESOLVED", "RESOLVED", True) in changes
    new_types = published(
        location,
        "select event_type from marts.fct_keeper_alert_trends "
        "where tenant = 'acme' and is_new_event_type",
    )
    assert ("set_security_benchmark",) in new_types

    raw_columns = {
        row[0] for row in published(location, "describe keeper_rmd.enterprise_stat_details")
    }
    assert "risk_score" in raw_columns  # the unknown field became a column; models still built


def test_demo_runs_and_prints_moving_kpis(demo_run):
    sections = {}  # title -> the cells of the data rows printed under it
    for block in demo_run.stdout.split("\n\n"):
        title, *lines = block.strip().splitlines() or [""]
        rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines]
        sections[title] = [row for row in rows if row[0][:4].isdigit()]
    assert "day   3/3" in demo_run.stdout
    assert len(sections["Keeper RMD"]) == 6  # one snapshot a day, two enterprises
    assert len({tuple(row[2:]) for row in sections["Keeper RMD"]}) > 1  # KPIs move
    assert sections["Trend Micro Cloud One"] and sections["1Password"]
    assert len(sections["1Password"][0]) == 10  # every column, none elided in a pipe
    assert demo_run.location.published_db.exists()
