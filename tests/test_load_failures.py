"""A load that fails outside HTTP still ends in one line naming the vendor, where it failed
and the cause (dlt puts the cause on a later line of its own message)."""

from __future__ import annotations

import socket
import threading
import time

import duckdb

from cli.main import main
from tests.conftest import query


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_a_load_waiting_on_a_vendor_does_not_hold_the_writer_lock(
    keeper_env, location, monkeypatch
):
    # A load holds the writer lock only to write: a vendor that never answers keeps its load
    # waiting (until the deadline), not a publish started meanwhile.
    data_dir = str(location.data_dir)
    assert main(["--data-dir", data_dir, "load", "keeper"]) == 0
    monkeypatch.setenv("POSTURE_LOAD_DEADLINE", "15")
    monkeypatch.setenv("POSTURE_WRITER_WAIT", "3")
    sim = keeper_env.simulator
    sim.faults.update(hang_next=1000)
    served = sim.requests_served
    stuck = threading.Thread(target=main, args=(["--data-dir", data_dir, "load", "keeper"],))
    stuck.start()
    while sim.requests_served == served:  # the load is now waiting on the vendor
        time.sleep(0.05)
    started = time.monotonic()
    assert main(["--data-dir", data_dir, "publish"]) == 0
    assert time.monotonic() - started < 3
    stuck.join(30)
    assert not stuck.is_alive()


def test_a_failed_load_in_dagster_says_what_the_cli_says(keeper_env, location, monkeypatch, capsys):
    import dagster as dg

    from assets.definitions import build_definitions

    monkeypatch.setenv("SOURCES__KEEPER_RMD__BASE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    assert main(["--data-dir", str(location.data_dir), "load", "keeper"]) == 1
    (cli_line,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    cause = cli_line.removeprefix("posture load: error: ")
    assert cause.startswith("Keeper RMD: /api/rest/rmd/get_enterprise_stat refused")
    keeper = build_definitions(location).resolve_assets_def(
        dg.AssetKey(["keeper_rmd", "enterprise_stat"])
    )
    result = dg.materialize([keeper], raise_on_error=False)
    (failure,) = result.get_step_failure_events()
    assert cause in failure.step_failure_data.user_failure_data.description
