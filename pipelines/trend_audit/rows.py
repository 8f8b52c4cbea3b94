"""Audit log records as rows of table `audit_logs`, collected column by column into Arrow tables.

The row keeps what the vendor sent: the contract's fields as typed columns, any other top-level
key as a text column of its own (`unknown_columns`), and the whole record as JSON text in `raw`.
What the fields mean (a principal's type and id, an API key's id and name, which events are
sign-ins) is worked out in the dbt models, once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.arrow import ARROW_TYPES, json_text, unknown_columns
from pipelines.vendor_http import MalformedResponseError

from .helpers import parse_time
from .settings import COLUMNS, KNOWN_KEYS, LOGS, VENDOR

_TIMESTAMP = ARROW_TYPES["timestamp"]
_SCHEMA = pa.schema(
    [
        pa.field(name, ARROW_TYPES[hint["data_type"]], nullable=hint.get("nullable", True))
        for name, hint in COLUMNS.items()
    ]
)


class AuditLogRows:
    """The rows of one run, each event once (a read may return an event twice, and the table is
    merged insert-only, which needs each key once per load), given out as Arrow tables."""

    def __init__(self, tenant: str | None, default_tenant: str) -> None:
        self.tenant = tenant  # when set, every record's tenant
        self.default_tenant = default_tenant  # of a record without an `accountID`
        self._collected: dict[str, set[str]] = {}  # tenant -> ids collected in this run
        self._reset()

    def _reset(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in _SCHEMA.names}
        self.unknown: dict[int, dict[str, Any]] = {}  # row -> the record's keys not in the contract
        self.size = 0

    def add(self, record: dict[str, Any], observed_at: datetime) -> tuple[str, str, datetime]:
        """Collect one record unless this run has already; returns its tenant, id and time."""
        event_id = record.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise MalformedResponseError(f"{VENDOR}: {LOGS} returned a log without an id")
        moment = parse_time(record.get("time"))
        account = json_text(record.get("accountID"))
        tenant = self.tenant or account or self.default_tenant
        collected = self._collected.setdefault(tenant, set())
        if event_id in collected:
            return tenant, event_id, moment
        collected.add(event_id)
        details = record.get("details")
        columns = self.columns
        columns["tenant"].append(tenant)
        columns["id"].append(event_id)
        columns["time"].append(moment)
        columns["type"].append(json_text(record.get("type")))
        columns["description"].append(json_text(record.get("description")))
        columns["account_id"].append(account)
        columns["principal_urn"].append(json_text(record.get("principalURN")))
        # Decoded at once: orjson's bytes hold a 4 KB buffer each, the str only what it needs.
        columns["details"].append(None if details is None else orjson.dumps(details).decode())
        columns["raw"].append(orjson.dumps(record).decode())
        columns["observed_at"].append(observed_at)
        if len(record) > len(KNOWN_KEYS) or not KNOWN_KEYS.issuperset(record):
            self.unknown[self.size] = {k: v for k, v in record.items() if k not in KNOWN_KEYS}
        self.size += 1
        return tenant, event_id, moment

    def take(self) -> pa.Table:
        """The collected rows as one Arrow table; collecting starts again from empty."""
        times = pa.array(self.columns["time"], _TIMESTAMP)
        derived = {"time": times, "event_date": pc.cast(times, pa.date32())}  # UTC days
        arrays = [
            derived[field.name] if field.name in derived else pa.array(values, field.type)
            for field, values in zip(_SCHEMA, self.columns.values(), strict=True)
        ]
        table = pa.Table.from_arrays(arrays, schema=_SCHEMA)
        if self.unknown:
            rows = [self.unknown.get(row, {}) for row in range(self.size)]
            for field, array in zip(
                *unknown_columns(rows, (), _SCHEMA.names, f"{VENDOR}: {LOGS}"), strict=True
            ):
                table = table.append_column(field, array)
        self._reset()
        return table
