"""Event marts on the real path (simulators over HTTP, real `dbt build`): an incremental build
gives the rows a full rebuild gives; events with impossible times are kept, flagged and left out
of the daily grain; Trend's marts say who created which API key and which are alive, and the
project builds with a vendor never loaded or a 1Password token that may not read item usages."""

from __future__ import annotations

import json
from datetime import timedelta

import duckdb
import pytest

from cli.steps import transform
from pipelines.registry import load
from simulators.onepassword_events import OnePasswordEventsSimulator
from simulators.server import SimulatorServer
from simulators.trend_audit import TrendAuditSimulator
from tests.conftest import query

EVENT_MARTS = (
    "fct_security_events",
    "fct_onepassword_sensitive_actions",
    "fct_onepassword_daily_signins",
    "fct_onepassword_daily_item_usage",
    "fct_onepassword_daily_audit_actions",
    "fct_onepassword_daily_kpis",
    "fct_trend_daily_events",
    "fct_trend_daily_kpis",
    "fct_daily_posture",
)
# Keeper's daily and user-day models, incremental by snapshot day (a snapshot retaken the same
# day too), and the models that every build would otherwise recompute from all history.
INCREMENTAL_MODELS = (
    "marts.fct_keeper_daily_kpis",
    "marts.fct_keeper_dormant_users",
    "intermediate.int_keeper_rmd__user_history",
    "intermediate.int_onepassword_events__tenant_days",
    "intermediate.int_cross_vendor__person_identities",
    "marts.dim_people",
    "marts.fct_trend_api_keys",
)


def mart_rows(location, table: str) -> list[tuple]:
    """Every row of a mart, sorted, so two builds compare as lists."""
    rows = query(location, f"select * from marts.{table}")
    return sorted(rows, key=repr)


def load_events(location) -> None:
    load("trend", location)
    load("onepassword", location)
    load("keeper", location)


@pytest.fixture
def event_sources(trend_env: SimulatorServer, onepassword_env: SimulatorServer, keeper_env):
    return trend_env, onepassword_env, keeper_env


def add_events_in_year_1_and_9999(location) -> None:
    """One event of each source stamped in year 1, one in year 9999, as a vendor might send."""
    with duckdb.connect(str(location.working_db)) as con:
        for table, key, time in (
            ("trend_audit.audit_logs", "id", '"time"'),
            ("onepassword_events.item_usages", "uuid", '"timestamp"'),
        ):
            for suffix, stamp in (
                ("-year1", "0001-01-01 00:00:00+00"),
                ("-year9999", "9999-12-31 23:00:00+00"),
            ):
                con.execute(
                    f"insert into {table} select * replace ({key} || '{suffix}' as {key}, "
                    f"timestamptz '{stamp}' as {time}, cast(timestamptz '{stamp}' as date) "
                    f"as event_date) from {table} limit 1"
                )


def add_late_events(location, label: str) -> None:
    """As the newest load might bring them: a 1Password sign-in two days before the account's
    first day in range (a late event for an old tenant-day) and one by someone no load named
    before."""
    with duckdb.connect(str(location.working_db)) as con:
        con.execute(
            f"""
            insert into onepassword_events.signin_attempts
            select attempts.* replace (
                uuid || '-late-{label}' as uuid,
                bounds.first_time - interval 2 day as "timestamp",
                cast(bounds.first_time - interval 2 day as date) as event_date,
                bounds.newest_observed as observed_at
            )
            from onepassword_events.signin_attempts as attempts,
                (select min("timestamp") as first_time, max(observed_at) as newest_observed
                 from onepassword_events.signin_attempts) as bounds
            limit 1
            """
        )
        con.execute(
            f"""
            insert into onepassword_events.signin_attempts
            select * replace (
                uuid || '-new-{label}' as uuid,
                'new-person-{label}' as target_user_uuid,
                'New.Person.{label}@Example.com' as target_user_email
            )
            from onepassword_events.signin_attempts
            order by observed_at desc
            limit 1
            """
        )


def assert_year_1_and_9999_kept_flagged_and_left_out_of_the_days(location) -> None:
    flagged = query(
        location,
        "select source_table, count(*) from marts.fct_security_events "
        "where is_time_out_of_range group by all order by 1",
    )
    assert flagged == [("audit_logs", 2), ("item_usages", 2)]
    # The calendar spans the loaded days only: the simulators' few days of history.
    ((first, last, days),) = query(
        location,
        "select min(metric_date), max(metric_date), count(distinct metric_date) "
        "from marts.fct_daily_posture",
    )
    assert first.year >= 2000 and last.year < 9999 and days < 10
    # The raw rows are kept as loaded.
    assert query(
        location, "select count(*) from trend_audit.audit_logs where id like '%-year%'"
    ) == [(2,)]
    warned = [
        result["unique_id"]
        for result in json.loads((location.dbt_dir / "run_results.json").read_text())["results"]
        if "is_time_out_of_range" in result["unique_id"] and result["status"] == "warn"
    ]
    assert any("trend_audit" in w for w in warned) and any("item_usages" in w for w in warned)


# One warehouse, so the fewest dbt builds, proves both: events with impossible times are kept,
# flagged and left out of the days; later incremental builds give the rows a full rebuild gives.
def test_incremental_builds_give_the_rows_a_full_rebuild_gives_and_keep_impossible_times_flagged(
    event_sources, location
):
    load_events(location)
    keeper = event_sources[2]
    for _ in range(3):  # Keeper users' states span days before the days a build recomputes
        keeper.simulator.advance(days=1)
        load("keeper", location)
    add_events_in_year_1_and_9999(location)
    transform(location, quiet=True)  # passes: the check warns, it does not fail the build
    assert_year_1_and_9999_kept_flagged_and_left_out_of_the_days(location)

    for hours in (26, 2):  # a run a day later, then an hourly one (Keeper's snapshot retaken)
        for source in event_sources:
            source.simulator.advance(hours=hours)
        load_events(location)
        add_late_events(location, str(hours))
        transform(location, quiet=True)
    incremental = {table: mart_rows(location, table) for table in EVENT_MARTS}
    incremental_models = {
        model: sorted(query(location, f"from {model}"), key=repr) for model in INCREMENTAL_MODELS
    }
    assert all(incremental.values()) and all(incremental_models.values())
    # The late events reached the incremental builds: the calendar starts on the late day, and
    # each later load's new person is a person.
    assert query(
        location,
        "select min(event_date) = (select min(event_date) from onepassword_events.signin_attempts "
        "where uuid like '%-late-2') from intermediate.int_onepassword_events__tenant_days",
    ) == [(True,)]
    people = {email for (email,) in query(location, "select person_email from marts.dim_people")}
    assert {"new.person.26@example.com", "new.person.2@example.com"} <= people

    transform(location, quiet=True, full_refresh=True)
    for table in EVENT_MARTS:
        assert mart_rows(location, table) == incremental[table], table
    for model in INCREMENTAL_MODELS:
        assert sorted(query(location, f"from {model}"), key=repr) == incremental_models[model], (
            model
        )

    # The vendor's JSON is not copied into the marts: the raw table's key finds it.
    columns = [row[0] for row in query(location, "describe marts.fct_security_events")]
    assert "raw_json" not in columns and "raw" not in columns
    without_raw = query(
        location,
        """
        select count(*) from marts.fct_security_events as e
        left join trend_audit.audit_logs as t
            on e.source_table = 'audit_logs' and t.tenant = e.tenant and t.id = e.event_id
        left join onepassword_events.item_usages as i
            on e.source_table = 'item_usages' and i.uuid = e.event_id
        left join onepassword_events.signin_attempts as s
            on e.source_table = 'signin_attempts' and s.uuid = e.event_id
        left join onepassword_events.audit_events as a
            on e.source_table = 'audit_events' and a.uuid = e.event_id
        where coalesce(t.raw, i.raw, s.raw, a.raw) is null
        """,
    )
    assert without_raw == [(0,)]

    assert_hourly_builds_test_new_rows_and_full_builds_all_history(location, event_sources[0])


BAD_ROW = '{"bad": "row"}'  # the raw JSON of the rows this test makes bad, to find them again


def failed_tests(build_error: pytest.ExceptionInfo) -> set[str]:
    """The models whose data tests failed the build, each with the test's kind."""
    failed = str(build_error.value).removeprefix("dbt build failed: ").split(", ")
    return {name.split(".")[2] for name in failed if name.startswith("test.")}


def assert_hourly_builds_test_new_rows_and_full_builds_all_history(location, trend) -> None:
    """An hourly build fails on a bad row it loaded (a NULL, a new row repeating an old row's key)
    and never reads an old row made bad in place; `--full-refresh` finds that one."""
    with duckdb.connect(str(location.working_db)) as con:
        # An old 1Password item usage loses its action, where its first load put it.
        ((old_uuid, old_observed, newest_observed),) = con.execute(
            "select arg_min(uuid, observed_at), min(observed_at), max(observed_at) "
            "from onepassword_events.item_usages"
        ).fetchall()
        assert newest_observed - old_observed > timedelta(days=1)  # beyond the lookback
        con.execute(
            "update onepassword_events.item_usages set action = null where uuid = ?", [old_uuid]
        )
    trend.simulator.advance(hours=1)
    load("trend", location)
    with duckdb.connect(str(location.working_db)) as con:
        # Two bad Trend events come with the hour's load: one with no type, and one repeating
        # the key of the oldest event.
        newest = "from trend_audit.audit_logs order by observed_at desc limit 1"
        con.execute(
            "insert into trend_audit.audit_logs by name select * replace "
            f"(id || '-untyped' as id, null as type, '{BAD_ROW}' as raw) {newest}"
        )
        con.execute(
            "insert into trend_audit.audit_logs by name select * replace "
            f"((select observed_at {newest}) as observed_at, "
            f"(select _dlt_load_id {newest}) as _dlt_load_id, '{BAD_ROW}' as raw) "
            "from trend_audit.audit_logs order by observed_at limit 1"
        )

    with pytest.raises(RuntimeError) as hourly:
        transform(location, quiet=True)
    failed = failed_tests(hourly)
    assert any(t.startswith("not_null_columns_stg_trend_audit__audit_logs") for t in failed)
    assert any(t.startswith("unique_combination_stg_trend_audit__audit_logs") for t in failed)
    assert not any("item_usage" in t for t in failed), failed  # the old row was not read

    with duckdb.connect(str(location.working_db)) as con:
        con.execute(f"delete from trend_audit.audit_logs where raw = '{BAD_ROW}'")
    with pytest.raises(RuntimeError) as full:
        transform(location, quiet=True, full_refresh=True)
    failed = failed_tests(full)
    assert any(t.startswith("not_null_columns_stg_onepassword_events__item_usages") for t in failed)
    assert not any("trend_audit" in t for t in failed), failed


TREND_ACCOUNTS = ("310442718012", "529901334417")


# One build for two claims: Trend's marts answer who created which API key and which are alive,
# and the whole project builds though Keeper was never loaded and 1Password's token may not
# read item usages (the 1Password marts still count the other events).
@pytest.mark.slow
def test_trend_marts_answer_who_created_which_key_with_keeper_never_loaded_and_no_item_usages(
    location, trend_key: str, onepassword_token: str, monkeypatch
):
    trend = TrendAuditSimulator(
        seed=5,
        events_per_day=400,
        history_days=7,
        accounts=TREND_ACCOUNTS,
        api_keys={trend_key: None},
    )
    onepassword = OnePasswordEventsSimulator(
        seed=5,
        users=20,
        history_days=3,
        events_per_day={"signinattempts": 200, "itemusages": 400, "auditevents": 60},
        tokens={onepassword_token: ("signinattempts", "auditevents")},  # not `itemusages`
    )
    with SimulatorServer(trend) as trend_server, SimulatorServer(onepassword) as op_server:
        monkeypatch.setenv("SOURCES__ONEPASSWORD_EVENTS__BASE_URL", op_server.url)
        monkeypatch.setenv("SOURCES__ONEPASSWORD_EVENTS__TOKEN", onepassword_token)
        load("onepassword", location)
        trend_source = {"base_url": trend_server.url, "api_key": trend_key}
        load("trend", location, **trend_source)
        trend.faults.update(future_event_hours=72)  # still ahead when read, two days on
        trend.advance(days=2)
        load("trend", location, **trend_source)
    transform(location, quiet=True)  # the whole project: Keeper's tables were never loaded

    (onepassword_kpis,) = query(
        location,
        "select count(*), sum(item_usages), sum(signin_attempts)"
        " from marts.fct_onepassword_daily_kpis",
    )
    assert onepassword_kpis[0] > 0 and onepassword_kpis[1] == 0 and onepassword_kpis[2] > 0

    # What the records' fields mean is worked out in SQL: who acted, which key, bad times.
    ((principal_types, keys, future),) = query(
        location,
        "select count(distinct principal_type), count(distinct api_key_id), "
        "count(*) filter (where is_future_time) from intermediate.int_trend_audit__audit_events",
    )
    assert principal_types == 2 and keys > 10 and future == 1
    today = str(trend.now.date())
    for account in TREND_ACCOUNTS:
        alive = dict(
            query(
                location,
                "select api_key_id, api_key_name from marts.fct_trend_api_keys "
                f"where tenant = '{account}' and is_alive",
            )
        )
        assert alive == trend.api_keys_alive(account)
        ((alive_today, events_total),) = query(
            location,
            "select api_keys_alive, (select sum(events_total) from marts.fct_trend_daily_kpis "
            f"where tenant = '{account}') from marts.fct_trend_daily_kpis "
            f"where tenant = '{account}' and event_date = '{today}'",
        )
        # Every event is counted on its day; the one dated after today waits for its day.
        up_to_today = [e for e in trend.retained_events(account) if e["time"][:10] <= today]
        assert alive_today == len(alive) and events_total == len(up_to_today)
