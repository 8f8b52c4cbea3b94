"""The README's instructions for readers work: the analyst's SQL runs, and so do its
`dbt docs generate` and its command for the models' unit tests."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def section(heading: str) -> str:
    """The README's text under `heading`, up to the next heading of any level."""
    start = README.index(f"\n{heading}\n")
    following = re.search(r"\n#{2,3} ", README[start + len(heading) + 2 :])
    return README[start : start + len(heading) + 2 + (following.start() if following else 0)]


def blocks(language: str, text: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def statements(sql: str) -> list[str]:
    """The statements of a block, each without its comment lines."""
    parts = (
        "\n".join(line for line in part.splitlines() if not line.lstrip().startswith("--"))
        for part in sql.split(";")
    )
    return [part.strip() for part in parts if part.strip()]


def test_the_readme_queries_run_on_the_demo_warehouse(demo_run):
    analyst = section("### The analyst: SQL")
    queries = [query for block in blocks("sql", analyst) for query in statements(block)]
    assert len(queries) >= 6
    with duckdb.connect(str(demo_run.location.published_db), read_only=True) as con:
        results = {query: con.execute(query).fetchall() for query in queries}
    organisation_days = next(rows for query, rows in results.items() if "fct_org_daily" in query)
    assert organisation_days and {row[0] for row in organisation_days} == {"acme", "globex"}


def readme_dbt(demo_run, line: str) -> subprocess.CompletedProcess:
    """Run one of the README's `../../.venv/bin/dbt` lines as its docs block says: in the demo's
    warehouse folder, with the variables it exports. Here that folder is the tests' demo and
    `../..` this checkout."""
    (docs,) = [block for block in blocks("sh", README) if "dbt docs generate" in block]
    assert shlex.split(docs.splitlines()[0], comments=True) == ["cd", "data/demo"]
    exported = {
        name: value
        for export in docs.splitlines()
        if export.startswith("export ")
        for name, value in (word.split("=", 1) for word in shlex.split(export, comments=True)[1:])
    }
    folder = demo_run.location.data_dir
    env = {
        **os.environ,
        **{
            name: value.replace("$PWD/../../", f"{ROOT}/").replace("$PWD", str(folder))
            for name, value in exported.items()
        },
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    assert folder / env["POSTURE_DUCKDB_PATH"] == demo_run.location.working_db
    assert env["DBT_TARGET_PATH"] == env["DBT_LOG_PATH"] == str(demo_run.location.dbt_dir)
    assert env["DBT_PROJECT_DIR"] == env["DBT_PROFILES_DIR"] == str(ROOT / "dbt_models")
    command = shlex.split(line, comments=True)
    assert command[0] == "../../.venv/bin/dbt"  # the project's own dbt, which dev.py installs
    command[0] = str(Path(sys.executable).parent / "dbt")  # the venv running these tests
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def readme_line(needle: str) -> str:
    """The one line of the README's shell blocks that holds `needle`."""
    lines = [line for block in blocks("sh", README) for line in block.splitlines()]
    (line,) = [line for line in lines if needle in line]
    return line


def test_dbt_docs_generate_runs_as_the_readme_says(demo_run):
    out = readme_dbt(demo_run, readme_line("dbt docs generate"))
    assert out.returncode == 0, out.stdout[-3000:]
    catalog = json.loads((demo_run.location.dbt_dir / "catalog.json").read_text())
    documented = {node.split(".")[-1] for node in catalog["nodes"]}
    assert {"fct_daily_posture", "fct_org_daily_posture", "fct_security_events"} <= documented


def test_the_unit_tests_builds_leave_out_pass_as_the_readme_runs_them(demo_run):
    out = readme_dbt(demo_run, readme_line("test_type:unit"))
    assert out.returncode == 0, out.stdout[-3000:]
    results = json.loads((demo_run.location.dbt_dir / "run_results.json").read_text())["results"]
    # The project's on-run-start and on-run-end hooks run with every command; every other node
    # it ran is a unit test.
    nodes = [r for r in results if not r["unique_id"].startswith("operation.")]
    unit_tests = [r for r in nodes if r["unique_id"].startswith("unit_test.")]
    assert len(unit_tests) == len(nodes) >= 10
    assert {r["status"] for r in unit_tests} == {"pass"}
    # The demo's build left them out, as every `posture transform` does.
    assert "unit_test" not in demo_run.built and {"model", "test"} <= demo_run.built
