"""The `posture` command line: fast start, loads, one clear line for bad input, benchmarks via
POST."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli.main import main
from simulators.server import SimulatorServer
from tests.conftest import query


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`posture` in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_help_does_not_import_heavy_libraries():
    probe = (
        "import sys, cli.main; cli.main.build_parser().format_help(); "
        "print(sorted(m for m in ('dlt', 'dagster', 'dbt', 'dagster_dbt', 'duckdb', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "demo" in run_cli("--help").stdout


def test_load_all_loads_every_source_in_the_posture_program(
    keeper_env, trend_env, onepassword_env, location
):
    loaded = run_cli("--data-dir", str(location.data_dir), "load", "all")
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    (counts,) = query(
        location,
        "select (select count(*) from keeper_rmd.security_alerts_summary), "
        "(select count(*) from trend_audit.audit_logs), "
        "(select count(*) from onepassword_events.signin_attempts)",
    )
    assert all(counts), counts


@pytest.mark.parametrize(
    "args, expected",
    [
        (["load", "salesforce"], "invalid choice: 'salesforce'"),
        (["demo", "--days", "0"], "must be at least 1"),
        (["kpis", "--days", "100000000000000000000"], "is more than 36525 days"),
        (["kpis", "--days", "-3"], "must be at least 1"),
        (["benchmarks", "set", "create-alerts", "RESOLVED"], "is not a benchmark id"),
        (["benchmarks", "set", "SB_CREATE_ALERTS", "DONE"], "invalid choice: 'DONE'"),
    ],
)
def test_bad_arguments_get_one_clear_line(args, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert expected in capsys.readouterr().err


def test_missing_config_names_the_variable(monkeypatch, location, capsys):
    monkeypatch.setenv("POSTURE_DATA_DIR", str(location.data_dir))
    monkeypatch.delenv("SOURCES__KEEPER_RMD__BASE_URL", raising=False)
    monkeypatch.delenv("SOURCES__KEEPER_RMD__API_TOKEN", raising=False)
    assert main(["load", "keeper"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "SOURCES__KEEPER_RMD__BASE_URL" in err and "SOURCES__KEEPER_RMD__API_TOKEN" in err


def test_wrong_token_is_one_line_naming_keeper(monkeypatch, keeper, location, capsys):
    monkeypatch.setenv("POSTURE_DATA_DIR", str(location.data_dir))
    monkeypatch.setenv("SOURCES__KEEPER_RMD__BASE_URL", keeper.url)
    monkeypatch.setenv("SOURCES__KEEPER_RMD__API_TOKEN", "not-the-token")
    assert main(["load", "keeper"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Keeper RMD" in err and "401" in err and "not-the-token" not in err


def test_kpis_before_anything_is_published(monkeypatch, location, capsys):
    monkeypatch.setenv("POSTURE_DATA_DIR", str(location.data_dir))
    assert main(["kpis"]) == 2
    assert "nothing published yet" in capsys.readouterr().err


def test_benchmarks_set_posts_to_keeper(keeper_env: SimulatorServer, capsys):
    benchmark = next(
        b
        for b in ("SB_CREATE_ALERTS", "SB_CONFIGURE_IP_ALLOWLISTING", "SB_DISABLE_ACCOUNT_RECOVERY")
        if keeper_env.simulator.benchmark(b)["status"] != "RESOLVED"
    )
    assert main(["benchmarks", "set", benchmark, "resolved", "--tenant", "acme"]) == 2
    assert "tenants are named in a configuration file" in capsys.readouterr().err
    assert keeper_env.simulator.benchmark(benchmark)["status"] != "RESOLVED"
    assert main(["benchmarks", "set", benchmark, "resolved"]) == 0
    assert f"{benchmark}: RESOLVED" in capsys.readouterr().out
    assert keeper_env.simulator.benchmark(benchmark)["status"] == "RESOLVED"


def test_load_all_loads_every_source_then_names_each_failure(
    monkeypatch, keeper, trend_env, onepassword_env, location, capsys
):
    monkeypatch.setenv("POSTURE_DATA_DIR", str(location.data_dir))
    monkeypatch.setenv("SOURCES__KEEPER_RMD__BASE_URL", keeper.url)
    monkeypatch.setenv("SOURCES__KEEPER_RMD__API_TOKEN", "not-the-token")  # Keeper refuses it
    monkeypatch.delenv("SOURCES__ONEPASSWORD_EVENTS__TOKEN")  # and 1Password is not set up
    code = main(["load", "all"])
    out, err = capsys.readouterr()
    assert code == 2  # the worst of the two: a missing setting
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("posture load keeper: error: ") and "401" in lines[0]
    assert lines[1].startswith("posture load onepassword: error: missing configuration")
    assert "SOURCES__ONEPASSWORD_EVENTS__TOKEN" in lines[1]
    assert "loaded trend" in out  # the source between the two failures still loaded
    assert query(location, "select count(*) > 0 from trend_audit.audit_logs") == [(True,)]
