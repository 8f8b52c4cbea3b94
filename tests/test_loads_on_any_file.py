"""Loads work on a working file whatever wrote its raw tables: a repair in the DuckDB shell or a
restore writes with DuckDB's defaults, and the next load must still merge into it."""

from __future__ import annotations

import duckdb

from pipelines.registry import load
from simulators.server import SimulatorServer
from tests.conftest import query

GROWN_DAYS = 3000


def test_a_load_merges_into_tables_a_plain_connection_wrote(keeper_env: SimulatorServer, location):
    load("keeper", location)
    users = keeper_env.simulator.user_count()
    # The table rewritten by a plain connection at DuckDB's default row groups, with earlier
    # days copied in (several groups' worth of rows) and today's rows last, deep in a group.
    with duckdb.connect(str(location.working_db)) as con:
        con.execute("create temp table today as from keeper_rmd.enterprise_stat_details")
        con.execute("delete from keeper_rmd.enterprise_stat_details")
        con.execute(
            "insert into keeper_rmd.enterprise_stat_details by name "
            "select d.* replace (d.snapshot_date - t.days::int as snapshot_date, "
            "d._dlt_id || '-' || t.days as _dlt_id) "
            f"from today d, range(0, {GROWN_DAYS + 1}) t(days) order by t.days desc"
        )
        con.execute("checkpoint")
    keeper_env.simulator.advance(hours=1)
    keeper_env.simulator.faults.update(extra_field=True)  # a new column on the grown table
    load("keeper", location)  # the same day again: its rows are replaced by delete-insert
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    ((days, rows),) = query(
        location,
        "select count(distinct snapshot_date), count(*) from keeper_rmd.enterprise_stat_details",
    )
    assert (days, rows) == (GROWN_DAYS + 2, (GROWN_DAYS + 2) * users)
