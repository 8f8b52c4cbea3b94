"""dlt source for Keeper's Risk Management Dashboard (RMD) Admin REST API.

The endpoints answer only "now", so each run is a snapshot: every row carries its tenant, the
vendor's observation time (`observed_at`, from the `Date` header) and its UTC `snapshot_date`, and
dlt adds `_dlt_load_id`. A re-take on the same day replaces that day's rows of the tenant, also
when an endpoint now answers none (each table, even empty, is loaded with that scope); other days
are never touched, so the tables are the history.

Talking to the API (the token header, the continuation-token pagination and its guards, the
benchmark update) is in `client`; endpoints and table hints in `settings`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import dlt
import pyarrow as pa
from dlt.sources import DltResource
from requests import Response

from pipelines.arrow import records_to_table
from pipelines.vendor_http import (
    MalformedResponseError,
    parse_utc,
    require,
    require_records,
    server_time,
)

from .client import fetch_pages, keeper_client
from .settings import (
    ALERTS_DETAIL,
    ALERTS_SUMMARY,
    BENCHMARKS,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_DISPOSITION,
    SNAPSHOT_KEY,
    STAT,
    STAT_DETAILS,
    TABLE_COLUMNS,
    VENDOR,
)


@dlt.source(name="keeper_rmd", section="keeper_rmd", max_table_nesting=0)
def keeper_rmd(
    base_url: str = dlt.config.value,
    api_token: str = dlt.secrets.value,
    tenant: str | None = None,
) -> list[DltResource]:
    """Snapshot every RMD endpoint once.

    Args:
        base_url: e.g. `https://keepersecurity.com` (`SOURCES__KEEPER_RMD__BASE_URL`).
        api_token: the Admin REST API token (`SOURCES__KEEPER_RMD__API_TOKEN`).
        tenant: a name for this Keeper enterprise (default: the base URL's host name).
    """
    client = keeper_client(base_url, api_token)
    observation = Observation(tenant or urlsplit(base_url).hostname or "keeper")

    def snapshot_resource(name: str, primary_key: tuple[str, ...] | None = None) -> Any:
        return dlt.resource(
            name=name,
            write_disposition=SNAPSHOT_DISPOSITION,
            primary_key=primary_key,
            columns={**SNAPSHOT_COLUMNS, **TABLE_COLUMNS[name]},
        )

    def pages(path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[list[dict]]:
        """Each page's list under `key`, with the snapshot columns added."""
        for page in fetch_pages(client, path, params):
            body = page[0]
            columns = observation.snapshot_columns(page.response)
            yield [with_columns(row, columns) for row in require_records(body, key, VENDOR, path)]

    def table(name: str, rows: list[dict[str, Any]], path: str) -> Any:
        """`rows` (possibly none) as a typed Arrow table, marked to replace the snapshot's day."""
        hints = {**SNAPSHOT_COLUMNS, **TABLE_COLUMNS[name]}
        return dlt.mark.with_hints(
            records_to_table(rows, hints, f"{VENDOR}: {path}"),
            dlt.mark.make_hints(write_disposition=observation.replacing_its_day()),
        )

    @snapshot_resource("enterprise_stat", primary_key=SNAPSHOT_KEY)
    def enterprise_stat() -> Iterator[pa.Table]:
        for page in fetch_pages(client, STAT):
            body = page[0]
            for key in ("users_has_records", "users_logged_recent"):
                require(body, key, int, VENDOR, STAT)
            yield table(
                "enterprise_stat",
                [with_columns(body, observation.snapshot_columns(page.response))],
                STAT,
            )

    @snapshot_resource("enterprise_stat_details", primary_key=(*SNAPSHOT_KEY, "enterprise_user_id"))
    def enterprise_stat_details() -> Iterator[list[dict[str, Any]]]:
        for rows in pages(STAT_DETAILS, "enterprise_stat_details"):
            for row in rows:
                require(row, "enterprise_user_id", str, VENDOR, STAT_DETAILS)
                row["last_logged_in"] = parse_keeper_time(
                    row.get("last_logged_in"), "last_logged_in", STAT_DETAILS
                )
            yield table("enterprise_stat_details", rows, STAT_DETAILS)

    @snapshot_resource("security_alerts_summary", primary_key=(*SNAPSHOT_KEY, "event"))
    def security_alerts_summary() -> Iterator[pa.Table]:
        for rows in pages(ALERTS_SUMMARY, "security_alerts_summary"):
            for row in rows:
                require(row, "event", str, VENDOR, ALERTS_SUMMARY)
            yield table("security_alerts_summary", rows, ALERTS_SUMMARY)

    # Fanned out from the summary: one detail call per event type seen today (none when the
    # summary is empty, which still replaces the day's details). No primary key: a vendor that
    # answers per user returns several rows per event type.
    @dlt.transformer(
        name="security_alerts_detail",
        data_from=security_alerts_summary,
        write_disposition=SNAPSHOT_DISPOSITION,
        columns={**SNAPSHOT_COLUMNS, **TABLE_COLUMNS["security_alerts_detail"]},
    )
    def security_alerts_detail(summary: pa.Table) -> Iterator[pa.Table]:
        event_types = dict.fromkeys(summary.column("event").to_pylist())
        if not event_types:
            yield table("security_alerts_detail", [], ALERTS_DETAIL)
        for event_type in event_types:
            params = {"audit_event_type": event_type}
            # Both seeds show the detail under the summary's key.
            for rows in pages(ALERTS_DETAIL, "security_alerts_summary", params):
                rows = [with_columns(row, {"audit_event_type": event_type}) for row in rows]
                yield table("security_alerts_detail", rows, ALERTS_DETAIL)

    @snapshot_resource("security_benchmarks", primary_key=(*SNAPSHOT_KEY, "id"))
    def security_benchmarks() -> Iterator[list[dict[str, Any]]]:
        for rows in pages(BENCHMARKS, "security_benchmarks"):
            for row in rows:
                require(row, "id", str, VENDOR, BENCHMARKS)
                row["last_updated"] = parse_keeper_time(
                    row.get("last_updated"), "last_updated", BENCHMARKS
                )
            yield table("security_benchmarks", rows, BENCHMARKS)

    return [
        enterprise_stat,
        enterprise_stat_details,
        security_alerts_summary,
        security_alerts_detail,
        security_benchmarks,
    ]


@dataclass
class Observation:
    """When a snapshot was taken: the vendor's `Date` on the run's first response, and the tenant.

    Every row of one run carries the same `observed_at` and `snapshot_date`, so a day's snapshot
    is one consistent picture even if the run straddles midnight."""

    tenant: str
    observed_at: datetime | None = None

    def snapshot_columns(self, response: Response) -> dict[str, Any]:
        """The snapshot columns for rows from `response` (fixing the time on first use)."""
        if self.observed_at is None:
            self.observed_at = server_time(response)
        return {
            "tenant": self.tenant,
            "snapshot_date": self.snapshot_date,
            "observed_at": self.observed_at,
        }

    @property
    def snapshot_date(self) -> date:
        """The UTC day of the observation."""
        assert self.observed_at is not None
        return self.observed_at.date()

    def replacing_its_day(self) -> dict[str, Any]:
        """The merge that replaces this tenant's rows of the snapshot's day and no others. Its
        scope is the day, not the rows loaded, so a table the vendor now answers empty loses
        that day's earlier rows too (dlt's `destination_scope`, a SQL condition; `{table}` is
        dlt's placeholder for the destination table). The tenant is free text, and dlt splits
        that SQL on semicolons and new lines, so it goes in as hexadecimal digits only."""
        tenant = self.tenant.encode().hex()
        scope = (
            f"{{table}}.tenant = decode(from_hex('{tenant}'))"
            f" AND {{table}}.snapshot_date = DATE '{self.snapshot_date.isoformat()}'"
        )
        return {**SNAPSHOT_DISPOSITION, "destination_scope": scope}


def with_columns(record: dict[str, Any], columns: dict[str, Any]) -> dict[str, Any]:
    """`record` with `columns` added. A vendor field of the same name and another value is kept
    as `vendor_<name>`, not overwritten."""
    kept = {f"vendor_{k}": record[k] for k in columns if k in record and record[k] != columns[k]}
    return {**record, **kept, **columns}


def parse_keeper_time(value: Any, field: str, endpoint: str) -> datetime | None:
    """Keeper's `YYYY-MM-DD HH:MM:SS` (UTC) as an aware datetime; ISO 8601 is accepted too."""
    try:
        return parse_utc(value)
    except ValueError as exc:
        raise MalformedResponseError(f"{VENDOR}: {endpoint} field {field!r} is {exc}") from None
