"""A load that fails outside HTTP still ends in one line naming the vendor, where it failed
and the cause (dlt puts the cause on a later line of its own message)."""

from __future__ import annotations

import duckdb

from cli.main import main
from tests.conftest import query


def test_a_load_step_failure_names_vendor_job_and_cause(keeper_env, location, capsys):
    # A raw table someone created by hand, with a column type the vendor's values do not fit.
    with duckdb.connect(str(location.working_db)) as con:
        con.execute("create schema keeper_rmd")
        con.execute(
            "create table keeper_rmd.enterprise_stat (tenant text not null, snapshot_date date"
            " not null, observed_at timestamptz not null, users_has_records date,"
            " users_logged_recent bigint, _dlt_load_id text not null, _dlt_id text not null)"
        )
    assert main(["--data-dir", str(location.data_dir), "load", "keeper"]) == 1
    (err,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert err.startswith("posture load: error: Keeper RMD: load step failed"), err
    assert "in load job enterprise_stat" in err and "ConversionException: " in err
    assert query(location, "select count(*) from keeper_rmd.enterprise_stat") == [(0,)]
