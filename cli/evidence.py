"""`posture evidence`: an auditor's pack for an observation period, and its verification.

Each file of the pack is one query on the published warehouse, written as CSV and Parquet beside
the SQL that produced it (the period and organisation written into it, so it re-runs as is).
Every row names the load it came from (`load_id`, dlt's `_dlt_load_id`) and when the vendor
answered (`observed_at`). `manifest.json` records the period, when and by which version of the
project the pack was made, and each file's rows and SHA-256; `verify` re-hashes them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cli.scope import ORGANISATION_TENANTS, Period, organisations
from warehouse.location import WarehouseLocation

MANIFEST = "manifest.json"
PROJECT = "posture-warehouse"

# The organisations' tenants of one vendor, joined by each query as `tenants`.
_TENANTS = f"""join ({ORGANISATION_TENANTS}) as tenants
        on tenants.source = '{{source}}' and tenants.tenant = {{alias}}.tenant
        and tenants.organisation in ($organisations)"""


def _tenants(source: str, alias: str) -> str:
    return _TENANTS.format(source=source, alias=alias)


@dataclass(frozen=True)
class EvidenceFile:
    """One file of the pack: its name (without extension), what it shows, and its query."""

    name: str
    description: str
    sql: str


EVIDENCE_FILES = (
    EvidenceFile(
        "keeper_login_coverage_vault_adoption",
        "Per Keeper tenant and day: login coverage and vault adoption with their numerators "
        "and denominators, from that day's snapshot.",
        f"""
select tenants.organisation, kpis.tenant, kpis.snapshot_date,
    kpis.users_logged_recent, kpis.total_users, kpis.login_coverage,
    kpis.users_has_records, kpis.vault_adoption,
    stats.load_id, stats.observed_at
from marts.fct_keeper_daily_kpis as kpis
{_tenants("keeper", "kpis")}
left join staging.stg_keeper_rmd__enterprise_stats as stats
    on stats.tenant = kpis.tenant and stats.snapshot_date = kpis.snapshot_date
where kpis.snapshot_date between $start and $end
order by tenants.organisation, kpis.tenant, kpis.snapshot_date
""",
    ),
    EvidenceFile(
        "keeper_benchmark_status_daily",
        "Per Keeper tenant, benchmark and day: its status, the day it took that status "
        "(status_since) and from what, and whether it changed that day.",
        f"""
with daily as (
    select *,
        max(case when previous_status is distinct from status then snapshot_date end) over (
            partition by tenant, benchmark_id order by snapshot_date
        ) as status_since
    from intermediate.int_keeper_rmd__benchmark_status_daily
)
select tenants.organisation, daily.tenant, daily.benchmark_id, benchmarks.title,
    daily.snapshot_date, daily.status, daily.status_since, daily.previous_status,
    coalesce(daily.previous_status <> daily.status, false) as changed_that_day,
    daily.last_updated_at, snapshots.load_id, daily.observed_at
from daily
{_tenants("keeper", "daily")}
left join marts.dim_keeper_benchmarks as benchmarks on benchmarks.benchmark_id = daily.benchmark_id
left join staging.stg_keeper_rmd__benchmarks as snapshots
    on snapshots.tenant = daily.tenant and snapshots.benchmark_id = daily.benchmark_id
    and snapshots.snapshot_date = daily.snapshot_date
where daily.snapshot_date between $start and $end
order by tenants.organisation, daily.tenant, daily.benchmark_id, daily.snapshot_date
""",
    ),
    EvidenceFile(
        "onepassword_signin_failures",
        "Every 1Password sign-in attempt that did not succeed: who, when, why, from where.",
        f"""
select tenants.organisation, signins.tenant, signins.occurred_at, signins.user_email,
    signins.user_name, signins.category, signins.signin_type, signins.client_ip_address,
    signins.location_country, signins.event_uuid, signins.load_id, signins.observed_at
from intermediate.int_onepassword_events__signin_attempts as signins
{_tenants("onepassword", "signins")}
where not signins.is_success and signins.event_date between $start and $end
order by tenants.organisation, signins.tenant, signins.occurred_at, signins.event_uuid
""",
    ),
    EvidenceFile(
        "onepassword_sensitive_actions",
        "1Password actions an auditor asks about first (MFA turned off, users suspended, vault "
        "and item exports): who did it, to whom or what, when.",
        f"""
select tenants.organisation, actions.tenant, actions.occurred_at, actions.sensitive_action,
    actions.actor_email, actions.actor_name, actions.target_type, actions.target_email,
    actions.target_name, actions.vault_uuid, actions.item_uuid, actions.ip_address,
    actions.event_uuid, actions.load_id, actions.observed_at
from marts.fct_onepassword_sensitive_actions as actions
{_tenants("onepassword", "actions")}
where actions.event_date between $start and $end
order by tenants.organisation, actions.tenant, actions.occurred_at, actions.event_uuid
""",
    ),
    EvidenceFile(
        "trend_privileged_changes",
        "Trend Micro Cloud One privileged changes (API keys, invitations, roles, users): who "
        "and when.",
        f"""
select tenants.organisation, events.tenant, events.event_at, events.event_type,
    events.principal_type, events.principal_id, events.principal_urn, events.api_key_name,
    logs.event_description, events.event_id, logs.load_id, logs.observed_at
from intermediate.int_trend_audit__audit_events as events
{_tenants("trend", "events")}
join staging.stg_trend_audit__audit_logs as logs
    on logs.tenant = events.tenant and logs.event_id = events.event_id
where events.is_privileged_change and events.event_date between $start and $end
order by tenants.organisation, events.tenant, events.event_at, events.event_id
""",
    ),
    EvidenceFile(
        "gaps",
        "Days of the period with no Keeper snapshot, per tenant: nothing was observed then, and "
        "nothing is filled in for them.",
        f"""
with days as (
    select cast(day as date) as day from generate_series($start, $end, interval 1 day) as t(day)
),
keeper_tenants as (
    select distinct tenants.organisation, tenants.tenant
    from marts.fct_keeper_daily_kpis as kpis
    {_tenants("keeper", "kpis")}
)
select keeper_tenants.organisation, keeper_tenants.tenant, days.day as missing_snapshot_date
from keeper_tenants
cross join days
left join intermediate.int_keeper_rmd__snapshots as snapshots
    on snapshots.tenant = keeper_tenants.tenant and snapshots.snapshot_date = days.day
where snapshots.snapshot_date is null
order by keeper_tenants.organisation, keeper_tenants.tenant, days.day
""",
    ),
)


def _literal(value: Any) -> str:
    if isinstance(value, date):
        return f"date '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def render_sql(sql: str, period: Period, names: list[str]) -> str:
    """The query with the period and organisations written in, as it runs and is filed."""
    return (
        sql.replace("$start", _literal(period.start))
        .replace("$end", _literal(period.end))
        .replace("$organisations", ", ".join(_literal(name) for name in names))
        .strip()
        + "\n"
    )


def write_evidence(
    location: WarehouseLocation, out: Path, period: Period, organisation: str | None = None
) -> Path:
    """Write the pack for `period` into the folder `out` (created; must be empty if it exists)."""
    import pyarrow.csv
    import pyarrow.parquet

    from warehouse.connection import connect_published

    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: choose a new folder with --out")
    out.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    with connect_published(location) as con:
        names = organisations(con, organisation)
        for evidence in EVIDENCE_FILES:
            sql = render_sql(evidence.sql, period, names)
            table = con.execute(sql).to_arrow_table()
            (out / f"{evidence.name}.sql").write_text(sql, encoding="utf-8")
            pyarrow.csv.write_csv(table, out / f"{evidence.name}.csv")
            pyarrow.parquet.write_table(table, out / f"{evidence.name}.parquet")
            files.append(
                {
                    "name": evidence.name,
                    "description": evidence.description,
                    "rows": table.num_rows,
                    "sql": f"{evidence.name}.sql",
                    "loads": _loads(table),
                }
            )
    manifest = {
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
        "organisations": names,
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "project": {"name": PROJECT, "version": _version(), "commit": _commit()},
        "files": files,
        "sha256": {path.name: _sha256(path) for path in sorted(out.iterdir())},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def _loads(table: Any) -> list[dict[str, Any]]:
    """The loads a file's rows came from: id, rows and the observed-at range of each."""
    if "load_id" not in table.column_names:
        return []
    import pyarrow.compute as pc

    every_row = pc.CountOptions(mode="all")  # a row without a load id is counted too
    loads = table.group_by("load_id").aggregate(
        [("load_id", "count", every_row), ("observed_at", "min"), ("observed_at", "max")]
    )
    return sorted(
        (
            {
                "load_id": row["load_id"],
                "rows": row["load_id_count"],
                "first_observed_at": _iso(row["observed_at_min"]),
                "last_observed_at": _iso(row["observed_at_max"]),
            }
            for row in loads.to_pylist()
        ),
        key=lambda load: str(load["load_id"]),
    )


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def verify_evidence(folder: Path) -> int:
    """Re-hash every file the manifest lists; raises naming each file changed, missing or added.
    Returns how many files were checked."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {folder}: not an evidence pack")
    recorded: dict[str, str] = json.loads(manifest_path.read_text())["sha256"]
    present = {path.name for path in folder.iterdir() if path.name != MANIFEST}
    problems = [
        f"{name} (missing)" if name not in present else f"{name} (changed)"
        for name, digest in sorted(recorded.items())
        if name not in present or _sha256(folder / name) != digest
    ]
    problems += [f"{name} (not in the manifest)" for name in sorted(present - set(recorded))]
    if problems:
        raise ValueError(f"evidence in {folder} does not match its manifest: {', '.join(problems)}")
    return len(recorded)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PROJECT)
    except PackageNotFoundError:
        return None


def _commit() -> str | None:
    """The project's git commit when it runs from a checkout, else None."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
