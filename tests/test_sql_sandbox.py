"""`posture sql` reads the published copy and nothing else: no file, URL, attach or setting."""

from __future__ import annotations

import duckdb
import pytest

from cli.main import main
from pipelines.registry import load
from simulators.server import SimulatorServer
from tests.conftest import query
from warehouse.connection import connect_published
from warehouse.publish import publish

RAW_TABLE = "keeper_rmd.enterprise_stat"


def snapshot(*folders) -> dict[str, tuple[int, int]]:
    """Every file under `folders` with its size and modification time."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for folder in folders
        for p in folder.rglob("*")
        if p.is_file()
    }


def attacks(location, workdir, simulator_url: str) -> list[str]:
    working = location.working_db
    return [
        f"copy (select 1 as a) to '{workdir / 'out.csv'}'",
        f"copy (select 1 as a) to '{location.published_db}.wal'",
        f"attach '{workdir / 'new.duckdb'}' as fresh",
        "select * from read_csv('/etc/passwd', sep = ':')",
        "select content from read_text('.dlt/secrets.toml')",
        f"select * from read_text('{simulator_url}/api/rest/rmd/get_enterprise_stat')",
        f"attach '{working}' as working; drop table working.{RAW_TABLE}",
        f"attach '{working}' as working",
        "set enable_external_access = true",
        "reset enable_external_access",
        "install httpfs",
        "load httpfs",
        f"select 1; drop table {RAW_TABLE}",
        "create temp table scratch as select 1 as a",
    ]


def test_posture_sql_reaches_only_the_published_copy(
    keeper_env: SimulatorServer, keeper_token, location, tmp_path, monkeypatch, capsys
):
    load("keeper", location)
    publish(location)
    workdir = tmp_path / "analyst"
    (workdir / ".dlt").mkdir(parents=True)
    (workdir / ".dlt" / "secrets.toml").write_text(
        f'[sources.keeper_rmd]\napi_token = "{keeper_token}"\n'
    )
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("POSTURE_DATA_DIR", str(location.data_dir))
    rows_before = query(location, f"select count(*) from {RAW_TABLE}")
    files_before = snapshot(location.data_dir, workdir)

    assert main(["sql", f"select count(*) as days from {RAW_TABLE}"]) == 0
    assert "days" in capsys.readouterr().out

    for attack in attacks(location, workdir, keeper_env.url):
        code = main(["sql", attack])
        out, err = capsys.readouterr()
        assert code != 0, (attack, out)
        assert len(err.strip().splitlines()) == 1 and err.startswith("posture sql: error: "), err
        assert keeper_token not in out + err and "root:" not in out, attack

    assert snapshot(location.data_dir, workdir) == files_before  # nothing written
    assert query(location, f"select count(*) from {RAW_TABLE}") == rows_before


def test_the_reader_connection_itself_refuses_files_and_settings(keeper_env, location, tmp_path):
    load("keeper", location)
    publish(location)
    with connect_published(location) as con:
        for statement in (
            f"copy (select 1 as a) to '{tmp_path / 'out.csv'}'",
            f"attach '{location.working_db}' as working",
            "select * from read_csv('/etc/passwd')",
            "set lock_configuration = false",
            "set memory_limit = '1TB'",
            f"create table {RAW_TABLE}_copy as select 1 as a",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(statement)
    assert not (tmp_path / "out.csv").exists()
