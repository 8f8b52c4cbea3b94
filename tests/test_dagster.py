"""Dagster definitions load, form one lineage graph, and the daily job materialises for real."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import duckdb
import pytest

from assets.definitions import build_definitions
from assets.schedules import WRITER_POOL
from simulators.server import SimulatorServer
from tests.conftest import files_containing, query

KEEPER_TABLES = (
    "enterprise_stat",
    "enterprise_stat_details",
    "security_alerts_summary",
    "security_alerts_detail",
    "security_benchmarks",
)


@pytest.fixture
def defs(location) -> dg.Definitions:
    return build_definitions(location)


def test_definitions_load_with_one_lineage_graph(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    keys = set(graph.get_all_asset_keys())
    loaded = {dg.AssetKey(["keeper_rmd", table]) for table in KEEPER_TABLES}
    assert loaded <= keys
    # Every loaded table feeds a staging model: dbt's source keys are the dlt assets' keys.
    for key in loaded:
        children = graph.get(key).child_keys
        assert any(child.path[-1].startswith("stg_keeper_rmd__") for child in children), key
    # Publishing waits for every model.
    published = graph.get(dg.AssetKey("published_warehouse"))
    assert dg.AssetKey(["marts", "fct_keeper_daily_kpis"]) in published.parent_keys
    assert defs.resolve_schedule_def("daily_posture_schedule").cron_schedule == "0 5 * * *"
    assert defs.resolve_schedule_def("event_sources_schedule").cron_schedule == "15 * * * *"
    events_job = defs.resolve_job_def("event_sources")
    assert (
        dg.AssetKey(["onepassword_events", "signin_attempts"])
        in events_job.asset_layer.selected_asset_keys
    )
    assert (
        dg.AssetKey(["keeper_rmd", "enterprise_stat"])
        not in events_job.asset_layer.selected_asset_keys
    )
    # dbt tests are asset checks, e.g. a model's one test of its not-null columns.
    kpi_checks = {
        key.name
        for key in graph.asset_check_keys
        if key.asset_key == dg.AssetKey(["marts", "fct_keeper_daily_kpis"])
    }
    assert any(name.startswith("not_null_columns_") for name in kpi_checks)


def test_every_loaded_table_has_its_sources_freshness_policy(defs: dg.Definitions):
    windows = {}  # asset key -> the fail window of its freshness policy
    for spec in defs.resolve_all_asset_specs():
        if spec.freshness_policy is not None:
            windows[spec.key] = spec.freshness_policy.fail_window.to_timedelta()
    hours = {key: window / timedelta(hours=1) for key, window in windows.items()}
    for table in KEEPER_TABLES:
        assert hours[dg.AssetKey(["keeper_rmd", table])] == 36  # one snapshot a day
    events = {key for key in hours if key.path[0] in ("trend_audit", "onepassword_events")}
    assert dg.AssetKey(["trend_audit", "audit_logs"]) in events
    assert dg.AssetKey(["onepassword_events", "signin_attempts"]) in events
    assert {hours[key] for key in events} == {3}  # polled hourly
    # Only loaded tables have one: a model or the published copy is as fresh as its inputs.
    assert {key.path[0] for key in hours} == {"keeper_rmd", "trend_audit", "onepassword_events"}


def test_every_step_that_writes_the_warehouse_claims_the_writer_pool(defs: dg.Definitions):
    # DuckDB has one writer: steps of overlapping runs take turns instead of failing on the lock.
    graph = defs.resolve_asset_graph()
    pools = {
        graph.get(key).assets_def.node_def.name: graph.get(key).assets_def.op.pool
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }
    assert {"keeper_rmd", "dbt_models", "published_warehouse"} <= set(pools)
    assert set(pools.values()) == {WRITER_POOL}


def test_only_the_enabled_sources_are_scheduled(monkeypatch, location):
    monkeypatch.setenv("POSTURE_SOURCES", "keeper")
    defs = build_definitions(location)
    graph = defs.resolve_asset_graph()
    loaded = {key for key in graph.materializable_asset_keys if len(key.path) == 2}
    assert dg.AssetKey(["keeper_rmd", "enterprise_stat"]) in loaded
    assert not any(key.path[0] == "onepassword_events" for key in loaded)
    assert [job.name for job in defs.jobs] == ["daily_posture"]


def test_daily_job_materialises_load_models_checks_and_publish(
    defs: dg.Definitions,
    keeper_env: SimulatorServer,
    onepassword_env: SimulatorServer,
    trend_env: SimulatorServer,
    location,
    keeper_token: str,
    onepassword_token: str,
    trend_key: str,
    monkeypatch,
):
    # The Trend log is a backlog of several parts: the step loads them all, materialises once.
    monkeypatch.setenv("SOURCES__TREND_AUDIT__MAX_EVENTS", "250")
    result = defs.resolve_job_def("daily_posture").execute_in_process(
        instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    events = result.get_asset_materialization_events()
    trend_log = dg.AssetKey(["trend_audit", "audit_logs"])
    assert [event.asset_key for event in events].count(trend_log) == 1
    ((trend_rows, trend_loads),) = query(
        location, "select count(*), count(distinct _dlt_load_id) from trend_audit.audit_logs"
    )
    assert trend_rows == len(trend_env.simulator.retained_events()) and trend_loads > 1
    materialized = {event.asset_key for event in events}
    assert dg.AssetKey(["keeper_rmd", "enterprise_stat_details"]) in materialized
    assert dg.AssetKey(["marts", "fct_keeper_daily_kpis"]) in materialized
    assert dg.AssetKey("published_warehouse") in materialized
    checks = result.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)
    with duckdb.connect(str(location.published_db), read_only=True) as con:
        (users,) = con.execute(
            "select total_users from marts.fct_keeper_daily_kpis where tenant = 'acme'"
        ).fetchone()
    assert users == keeper_env.simulator.user_count()
    with duckdb.connect(str(location.published_db), read_only=True) as con:
        sources = {
            row[0] for row in con.execute("select source from marts.fct_daily_posture").fetchall()
        }
    assert sources == {"keeper", "trend", "onepassword"}
    with duckdb.connect(str(location.published_db), read_only=True) as con:
        events = dict(
            con.execute(
                "select source, count(*) from marts.fct_security_events group by 1"
            ).fetchall()
        )
        (op_events,) = con.execute(
            "select (select count(*) from onepassword_events.signin_attempts)"
            " + (select count(*) from onepassword_events.item_usages)"
            " + (select count(*) from onepassword_events.audit_events)"
        ).fetchone()
    assert events["onepassword"] == op_events and events["trend"] > 0
    # No token in the warehouse, the pipeline state, or Dagster's event metadata.
    for token in (keeper_token, onepassword_token, trend_key):
        assert files_containing(location.data_dir, token) == []
        assert not any(token in str(event) for event in result.all_events)
