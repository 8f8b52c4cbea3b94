"""The steps the CLI runs: load, transform, publish, show KPIs, set a benchmark.

Each prints a short progress line; heavy libraries are imported here, not at CLI start-up.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from pipelines.tenants import Tenant
from warehouse.location import WarehouseLocation

# What `posture kpis` shows of marts.fct_daily_posture, per vendor: (title, columns).
KPI_VIEWS = {
    "keeper": (
        "Keeper RMD",
        "total_users, round(login_coverage, 3) as login_coverage, "
        "round(vault_adoption, 3) as vault_adoption, dormant_users, never_logged_in, "
        "round(benchmark_remediation_rate, 3) as remediation, alert_occurrences as alerts_30d",
    ),
    "trend": (
        "Trend Micro Cloud One",
        "trend_events as events, trend_sign_ins as sign_ins, "
        "trend_principals_signing_in as principals, trend_api_keys_created as keys_created, "
        "trend_api_keys_deleted as keys_deleted, trend_api_keys_alive as keys_alive, "
        "trend_privileged_changes as privileged",
    ),
    "onepassword": (
        "1Password",
        "signin_attempts as signins, round(signin_failure_rate, 3) as failure_rate, "
        "distinct_users_signing_in as users, item_reveals as reveals, item_exports as exports, "
        "mfa_disabled, users_suspended as suspended, vault_exports",
    ),
}


def load_source(
    source: str | Tenant, location: WarehouseLocation, quiet: bool = False, **args: Any
) -> Any:
    """Load one tenant (a configured one, or a source's settings' tenant by the source's name)
    into the working file; prints rows per table."""
    from pipelines.registry import load

    tenant = source if isinstance(source, Tenant) else Tenant(source)
    name = tenant.label
    started = time.perf_counter()
    infos = load(tenant.source, location, tenant.pipeline_name, **tenant.source_args(), **args)
    if not quiet:
        counts = _row_counts(infos)
        summary = ", ".join(f"{table} {rows}" for table, rows in sorted(counts.items()))
        parts = f" in {len(infos)} parts" if len(infos) > 1 else ""
        seconds = time.perf_counter() - started
        print(f"loaded {name}{parts} in {seconds:.1f} s: {summary or 'no rows'}")
    return infos


def _row_counts(infos: list[Any]) -> dict[str, int]:
    """Rows normalised per table over the runs of one load (dlt's own tables left out)."""
    counts: dict[str, int] = {}
    for info in infos:
        trace = info.pipeline.last_trace
        for table, rows in (trace.last_normalize_info.row_counts if trace else {}).items():
            if not table.startswith("_dlt"):
                counts[table] = counts.get(table, 0) + rows
    return counts


def transform(location: WarehouseLocation, quiet: bool = False, full_refresh: bool = False) -> None:
    """`dbt build` on the working file (models, seeds, tests); raises naming what failed.
    Incremental models read only new loads unless `full_refresh` rebuilds them from all history.

    The same project, command and run (`run_build`) as Dagster's dbt step, as a plain dbt
    process: its own log lines are the progress, and nothing of dbt stays open in this process
    afterwards."""
    import json

    from warehouse.dbt_project import (
        BUILD_COMMAND,
        DBT_PROJECT_DIR,
        DbtBuildFailed,
        point_dbt_at,
        run_build,
    )

    point_dbt_at(location)  # the profile's engine; `run_build` names the file
    started = time.perf_counter()
    folder = str(DBT_PROJECT_DIR)
    arguments = [*BUILD_COMMAND, "--project-dir", folder, "--profiles-dir", folder]
    arguments += ["--quiet"] if quiet else []
    dbt_dir = str(location.dbt_dir.absolute())  # dbt runs in the warehouse's folder
    arguments += ["--target-path", dbt_dir, "--log-path", dbt_dir]
    arguments += ["--full-refresh"] if full_refresh else []
    try:
        run_build(location, arguments)
    except DbtBuildFailed:
        results = location.dbt_dir / "run_results.json"
        failed = []
        if results.exists():
            nodes = json.loads(results.read_text()).get("results", [])
            failed = [n["unique_id"] for n in nodes if n.get("status") in ("error", "fail")]
    else:
        if not quiet:
            print(f"dbt build passed in {time.perf_counter() - started:.1f} s")
        return
    # Raised out of the handler, so the error's one line names what failed, not dbt's exit code.
    raise RuntimeError(f"dbt build failed: {', '.join(failed) or 'see the dbt output above'}")


def publish_step(location: WarehouseLocation, quiet: bool = False, force: bool = False) -> None:
    """Publish what readers see (a failed build only if `force`): a fresh read-only copy, or on
    DuckLake the lake's newest whole commit; prints which."""
    from warehouse.engine import ducklake_settings
    from warehouse.publish import publish

    if lake := ducklake_settings():
        from warehouse.ducklake import publish_lake

        version = publish_lake(lake, location, force)
        if not quiet:
            print(f"published the lake's commit {version}: readers see it from now on")
        return

    result = publish(location, force=force)
    if not quiet:
        how = "the spare updated in place" if result.in_place else "a copy"
        print(
            f"published {result.path} ({result.bytes / 1e6:.1f} MB, {result.seconds:.2f} s, {how})"
        )


def print_kpis(
    location: WarehouseLocation, days: int, tenant: str | None = None, as_of: datetime | None = None
) -> None:
    """Print each vendor's headline KPIs for its last `days` days (published warehouse, or the
    lake as of `as_of`)."""
    from cli.output import print_query
    from warehouse.engine import connect_reader

    with connect_reader(location, as_of) as con:
        for source, (title, columns) in KPI_VIEWS.items():
            where = (
                "where source = ? and (? is null or tenant = ?) and metric_date > "
                "(select max(metric_date) from marts.fct_daily_posture where source = ?) - ?"
            )
            params = (source, tenant, tenant, source, days)
            (count,) = con.execute(
                f"select count(*) from marts.fct_daily_posture {where}", params
            ).fetchone()
            if count:
                print(f"\n{title}")
                print_query(
                    con,
                    f"select metric_date as day, tenant, {columns} "
                    f"from marts.fct_daily_posture {where} order by tenant, day",
                    params,
                    max_rows=count,
                )


def print_sql(
    location: WarehouseLocation, query: str, max_rows: int, as_of: datetime | None = None
) -> None:
    """Run one read-only query on the published warehouse (or the lake as of `as_of`) and print
    up to `max_rows` rows."""
    from cli.output import print_query
    from warehouse.engine import connect_reader

    with connect_reader(location, as_of) as con:
        statements = con.extract_statements(query)
        kinds = [statement.type.name for statement in statements]
        # The sandboxed connection still lets DuckDB write its own log beside the file it opened
        # (a `COPY ... TO` that names it), so only a single query runs.
        if kinds != ["SELECT"]:
            raise ValueError(
                "only one query that reads is allowed (SELECT, FROM, WITH, DESCRIBE, SHOW, "
                f"SUMMARIZE), not {' + '.join(kinds) or 'nothing'}"
            )
        print_query(con, query, max_rows=max_rows)


def set_benchmark(benchmark_id: str, status: str, tenant_name: str | None = None) -> None:
    """POST one benchmark's status to a Keeper tenant: the one named in the configuration file,
    or the only one (the SOURCES__KEEPER_RMD__* settings' without a file)."""
    import dlt

    from pipelines.keeper_rmd.client import set_benchmarks
    from pipelines.registry import SOURCES
    from pipelines.tenants import tenant_to_act_on

    tenant = tenant_to_act_on("keeper", tenant_name)
    if tenant.name is None:
        base_url = dlt.config.get("sources.keeper_rmd.base_url")
        token = dlt.secrets.get("sources.keeper_rmd.api_token")
        settings = (("BASE_URL", base_url), ("API_TOKEN", token))
        missing = [name for name, value in settings if not value]
        if missing:
            names = ", ".join(f"SOURCES__KEEPER_RMD__{m}" for m in missing)
            raise ValueError(f"missing configuration: {names}")
    else:
        args = tenant.source_args()
        base_url, token = args["base_url"], args[SOURCES["keeper"].token_arg]
    changed = set_benchmarks(base_url, token, [(benchmark_id, status)])
    for row in changed:
        print(f"{row.get('id')}: {row.get('status')} (last updated {row.get('last_updated', '-')})")
