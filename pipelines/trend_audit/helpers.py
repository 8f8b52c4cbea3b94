"""Trend Micro Cloud One audit log details: the client, parsing records into Arrow columns, and
watching the order of a walk."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.sources.helpers.rest_client.auth import APIKeyAuth

from pipelines.arrow import ARROW_TYPES, json_text, unknown_columns
from pipelines.vendor_http import MalformedResponseError, VendorClient, parse_utc

from .settings import (
    API_KEY_ID_FIELDS,
    API_KEY_NAME_FIELDS,
    API_VERSION,
    COLUMNS,
    DEFAULT_REGION,
    KNOWN_KEYS,
    LOGS,
    REGION_URL,
    SECRET_HINT,
    VENDOR,
)

_TIMESTAMP = ARROW_TYPES["timestamp"]
_SCHEMA = pa.schema(
    [
        pa.field(name, ARROW_TYPES[hint["data_type"]], nullable=hint.get("nullable", True))
        for name, hint in COLUMNS.items()
    ]
)


def base_url_for(base_url: str | None, region: str | None) -> str:
    """The configured base URL, else the audit host of `region` (default us-1)."""
    return base_url or REGION_URL.format(region=region or DEFAULT_REGION)


def trend_client(base_url: str, api_key: str) -> VendorClient:
    """A client sending `Api-Version: v1` and `Authorization: ApiKey <key>` on every call."""
    if not api_key:
        raise ValueError(f"{VENDOR}: no API key configured; set {SECRET_HINT}")
    auth = APIKeyAuth(name="Authorization", api_key=f"ApiKey {api_key}", location="header")
    return VendorClient(base_url, auth, VENDOR, SECRET_HINT, headers={"Api-Version": API_VERSION})


def parse_time(value: Any) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime (no offset: UTC, as the vendor says)."""
    try:
        parsed = parse_utc(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise MalformedResponseError(
            f"{VENDOR}: {LOGS} returned a log whose time is not RFC 3339: {str(value)[:40]!r}"
        )
    return parsed


def principal_parts(urn: Any) -> tuple[str | None, str | None]:
    """(`user`, `<id>`) from `urn:cloudone:identity:<region>:<account>:user/<id>`; Nones when
    the URN has no `<type>/<id>` resource part."""
    if not isinstance(urn, str) or not urn.startswith("urn:"):
        return None, None
    kind, slash, ident = urn.rpartition(":")[2].partition("/")
    return (kind, ident) if slash and kind and ident else (None, None)


def api_key_fields(event_type: Any, details: Any) -> tuple[str | None, str | None]:
    """The API key's id and name of an `audit.apiKey_*` event, from its details."""
    if not isinstance(event_type, str) or ".apiKey_" not in event_type:
        return None, None
    if not isinstance(details, dict):
        return None, None
    nested = details.get("apiKey")
    places = (nested, details) if isinstance(nested, dict) else (details,)
    key_id = _first(places, API_KEY_ID_FIELDS)
    if key_id is None and isinstance(nested, str):
        key_id = nested
    if key_id is None:  # e.g. only the key's URN: `...:api-key/<id>`
        kind, ident = principal_parts(details.get("urn"))
        key_id = ident if kind == "api-key" else None
    return key_id, _first(places, API_KEY_NAME_FIELDS)


def _first(places: tuple[dict, ...], names: tuple[str, ...]) -> str | None:
    for place in places:
        for name in names:
            value = place.get(name)
            if value is not None and value != "":
                return json_text(value)
    return None


class LogBatch:
    """Records of the audit log collected column by column, handed out as Arrow tables.

    Contract fields become typed columns (plus columns derived from them); any other top-level
    key becomes a text column of its own (`unknown_columns`); the whole record is kept as JSON
    text in `raw`."""

    def __init__(self, default_tenant: str) -> None:
        self.default_tenant = default_tenant
        self._collected: dict[str, set[str]] = {}  # tenant -> ids collected in this run
        self._principals: dict[str | None, tuple[str | None, str | None]] = {}  # urn -> parts
        self._reset()

    def _reset(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in _SCHEMA.names}
        self.unknown: dict[int, dict[str, Any]] = {}  # row -> the record's keys not in the contract
        self.size = 0

    def add(self, record: dict[str, Any], observed_at: datetime) -> tuple[str, str, datetime]:
        """Collect one record, once per run (a walk may return an event twice, and the table
        is merged insert-only, which needs each key once per load); returns its tenant, id and
        time."""
        event_id = record.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise MalformedResponseError(f"{VENDOR}: {LOGS} returned a log without an id")
        moment = parse_time(record.get("time"))
        account = json_text(record.get("accountID"))
        tenant = account or self.default_tenant
        collected = self._collected.setdefault(tenant, set())
        if event_id in collected:
            return tenant, event_id, moment
        collected.add(event_id)
        event_type = json_text(record.get("type"))
        urn = json_text(record.get("principalURN"))
        details = record.get("details")
        principal = self._principals.get(urn)
        if principal is None:
            principal = self._principals[urn] = principal_parts(urn)
        key_id, key_name = api_key_fields(event_type, details)
        columns = self.columns
        columns["tenant"].append(tenant)
        columns["id"].append(event_id)
        columns["time"].append(moment)
        columns["type"].append(event_type)
        columns["description"].append(json_text(record.get("description")))
        columns["account_id"].append(account)
        columns["principal_urn"].append(urn)
        columns["principal_type"].append(principal[0])
        columns["principal_id"].append(principal[1])
        columns["api_key_id"].append(key_id)
        columns["api_key_name"].append(key_name)
        # Decoded at once: orjson's bytes hold a 4 KB buffer each, the str only what it needs.
        columns["details"].append(None if details is None else orjson.dumps(details).decode())
        columns["raw"].append(orjson.dumps(record).decode())
        columns["observed_at"].append(observed_at)
        if len(record) > len(KNOWN_KEYS) or not KNOWN_KEYS.issuperset(record):
            self.unknown[self.size] = {k: v for k, v in record.items() if k not in KNOWN_KEYS}
        self.size += 1
        return tenant, event_id, moment

    def take(self) -> pa.Table:
        """The collected rows as one Arrow table; the batch starts empty again."""
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


class OrderWatch:
    """Whether a walk has shown itself newest first: time never rose from one log to the next,
    and fell at least once. Logs repeated from the previous page (a page boundary that shifted
    because new events arrived mid-walk) are left out of the comparison."""

    def __init__(self) -> None:
        self._last: datetime | None = None
        self._fell = False
        self._rose = False
        self._previous_ids: set[str] = set()

    @classmethod
    def from_place(cls, place: dict[str, Any]) -> OrderWatch:
        """A watch continuing from `place()` of an earlier run (empty: a new walk)."""
        watch = cls()
        watch._last = parse_time(place["last"]) if place.get("last") else None
        watch._fell = bool(place.get("fell", False))
        watch._rose = bool(place.get("rose", False))
        watch._previous_ids = set(place.get("previous_ids", ()))
        return watch

    def place(self) -> dict[str, Any]:
        """What the watch has seen, as JSON-able state."""
        return {
            "last": self._last.isoformat() if self._last else None,
            "fell": self._fell,
            "rose": self._rose,
            "previous_ids": sorted(self._previous_ids),
        }

    def see(self, page: list[tuple[str, datetime]]) -> None:
        """Take in one page's (id, time) pairs, in the order served."""
        for event_id, moment in page:
            if event_id in self._previous_ids:
                continue
            if self._last is not None:
                if moment > self._last:
                    self._rose = True
                elif moment < self._last:
                    self._fell = True
            self._last = moment
        self._previous_ids = {event_id for event_id, _ in page}

    @property
    def newest_first(self) -> bool:
        """True once the walk has been seen to go back in time and never forward."""
        return self._fell and not self._rose
