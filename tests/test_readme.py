"""The README's instructions for readers work: the analyst's SQL runs, and so does its
`dbt docs generate`."""

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


def test_dbt_docs_generate_runs_as_the_readme_says(demo_run):
    (docs,) = [block for block in blocks("sh", README) if "dbt docs generate" in block]
    (export,) = [line for line in docs.splitlines() if line.startswith("export ")]
    assert export.split("=")[0] == "export POSTURE_DUCKDB_PATH"
    (generate,) = [line for line in docs.splitlines() if "dbt docs generate" in line]
    command = shlex.split(generate)
    assert command[0] == ".venv/bin/dbt"  # the project's own dbt, which dev.py installs
    command[0] = str(Path(sys.executable).parent / "dbt")  # the venv running these tests
    env = {
        **os.environ,
        "POSTURE_DUCKDB_PATH": str(demo_run.location.working_db),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
    catalog = json.loads((ROOT / "dbt_models" / "target" / "catalog.json").read_text())
    documented = {node.split(".")[-1] for node in catalog["nodes"]}
    assert {"fct_daily_posture", "fct_org_daily_posture", "fct_security_events"} <= documented
