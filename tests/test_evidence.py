"""`posture evidence`: the auditor's pack holds what the warehouse holds, and verify catches
any change to it."""

from __future__ import annotations

import csv
import json
from datetime import timedelta

import duckdb
import pyarrow.parquet as pq
import pytest

from cli.evidence import EVIDENCE_FILES, MANIFEST
from cli.main import main


def published(location, sql: str) -> list[tuple]:
    with duckdb.connect(str(location.published_db), read_only=True) as con:
        return con.execute(sql).fetchall()


def keeper_days(location):
    ((first, last),) = published(
        location, "select min(snapshot_date), max(snapshot_date) from marts.fct_keeper_daily_kpis"
    )
    return first, last


def csv_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_demo_pack_matches_the_warehouse_and_verifies(demo_run, capsys):
    pack = demo_run.location.data_dir / "evidence"
    assert f"evidence pack: {pack}" in demo_run.stdout
    manifest = json.loads((pack / MANIFEST).read_text())
    first, last = keeper_days(demo_run.location)
    assert manifest["period"] == {"from": f"{first}", "to": f"{last}"}
    assert manifest["project"]["version"] and len(manifest["project"]["commit"]) == 40
    assert manifest["generated_at"]

    names = {evidence.name for evidence in EVIDENCE_FILES}
    expected = {f"{name}.{ext}" for name in names for ext in ("csv", "parquet", "sql")}
    assert set(manifest["sha256"]) == expected
    for entry in manifest["files"]:
        rows = csv_rows(pack / f"{entry['name']}.csv")
        parquet = pq.read_table(pack / f"{entry['name']}.parquet")
        assert len(rows) == entry["rows"] == parquet.num_rows
        # The filed SQL is the query that made the file: run again, it gives the same rows.
        sql = (pack / entry["sql"]).read_text()
        assert len(published(demo_run.location, sql)) == entry["rows"]

    coverage = csv_rows(pack / "keeper_login_coverage_vault_adoption.csv")
    every_day = [f"{first + timedelta(days=n)}" for n in range((last - first).days + 1)]
    keeper_tenants = {row["tenant"] for row in coverage}
    assert keeper_tenants
    for tenant in keeper_tenants:  # one row per Keeper tenant and day, none missing
        assert [row["snapshot_date"] for row in coverage if row["tenant"] == tenant] == every_day
    for row in coverage:
        assert int(row["users_logged_recent"]) / int(row["total_users"]) == pytest.approx(
            float(row["login_coverage"])
        )
    loads = published(demo_run.location, "select load_id from keeper_rmd._dlt_loads")
    loads = {load_id for (load_id,) in loads}
    assert {row["load_id"] for row in coverage} <= loads
    listed = next(f for f in manifest["files"] if f["name"].startswith("keeper_login_coverage"))
    assert {load["load_id"] for load in listed["loads"]} == {row["load_id"] for row in coverage}

    signin_failures = csv_rows(pack / "onepassword_signin_failures.csv")
    assert signin_failures and all(row["category"] != "success" for row in signin_failures)
    (failures_in_mart,) = published(
        demo_run.location,
        "select sum(signin_failures) from marts.fct_onepassword_daily_kpis "
        f"where event_date between date '{first}' and date '{last}'",
    )[0]
    assert len(signin_failures) == failures_in_mart
    actions = csv_rows(pack / "onepassword_sensitive_actions.csv")
    actions = {row["sensitive_action"] for row in actions}
    assert "mfa_disabled" in actions
    assert csv_rows(pack / "trend_privileged_changes.csv")
    assert csv_rows(pack / "gaps.csv") == []  # the demo snapshots every day

    assert main(["evidence", "verify", str(pack)]) == 0
    assert f"all {len(expected)} files match" in capsys.readouterr().out


def test_verify_names_the_file_that_changed_went_missing_or_appeared(
    demo_run, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("POSTURE_DATA_DIR", str(demo_run.location.data_dir))
    first, last = keeper_days(demo_run.location)
    pack = tmp_path / "pack"
    args = ["evidence", "--from", f"{first}", "--to", f"{last}"]
    assert main([*args, "--out", str(pack)]) == 0
    capsys.readouterr()

    with open(pack / "keeper_login_coverage_vault_adoption.csv", "a") as handle:
        handle.write('"acme","acme-keeper",2026-01-09,80,80,1.0,80,1.0,"forged",\n')
    (pack / "gaps.parquet").unlink()
    (pack / "notes.txt").write_text("added later")
    assert main(["evidence", "verify", str(pack)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "keeper_login_coverage_vault_adoption.csv (changed)" in err
    assert "gaps.parquet (missing)" in err and "notes.txt (not in the manifest)" in err
    assert "gaps.csv" not in err


def test_days_without_a_snapshot_are_gaps_not_filled_in(demo_run, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTURE_DATA_DIR", str(demo_run.location.data_dir))
    first, last = keeper_days(demo_run.location)
    before = [first - timedelta(days=2), first - timedelta(days=1)]
    pack = tmp_path / "pack"
    args = ["evidence", "--org", "acme"]
    args += ["--from", f"{before[0]}", "--to", f"{last}", "--out", str(pack)]
    assert main(args) == 0

    gaps = csv_rows(pack / "gaps.csv")
    assert [(row["tenant"], row["missing_snapshot_date"]) for row in gaps] == [
        ("acme-keeper", f"{day}") for day in before
    ]
    coverage = csv_rows(pack / "keeper_login_coverage_vault_adoption.csv")
    coverage_days = {row["snapshot_date"] for row in coverage}
    assert not coverage_days & {f"{day}" for day in before}


@pytest.mark.parametrize(
    "args, expected",
    [
        (["evidence", "--from", "2026-01-01"], "--from and --to are required"),
        (["evidence", "--from", "2026-02-01", "--to", "2026-01-01"], "is after --to"),
        (
            ["evidence", "--from", "2026-01-01", "--to", "2026-01-31", "--org", "initech"],
            "no organisation 'initech'",
        ),
    ],
)
def test_evidence_refuses_a_bad_period_in_one_line(
    demo_run, tmp_path, monkeypatch, capsys, args, expected
):
    monkeypatch.setenv("POSTURE_DATA_DIR", str(demo_run.location.data_dir))
    assert main([*args, "--out", str(tmp_path / "pack")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err


def test_evidence_refuses_a_date_that_is_not_one(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["evidence", "--from", "2026-1-1", "--to", "2026-01-31"])
    assert exit_.value.code == 2
    assert "'2026-1-1' is not a date like 2026-01-31" in capsys.readouterr().err
