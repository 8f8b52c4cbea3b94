"""A page of 1Password events as a typed Arrow table, which dlt loads without per-row
normalisation.

A page's items arrive as the JSON text the vendor sent (see `paginator`): each is parsed (by
msgspec, which keeps integers of any size) for its columns, and kept as it came in `raw`.
Documented fields become typed, flattened columns; a value that does not fit its column (another
type, a number too big for BIGINT) is left null there and kept whole in `raw`; keys the contract
does not name become text columns.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.arrow import ARROW_TYPES, json_text, unknown_columns
from pipelines.vendor_http import MalformedResponseError, parse_utc

from .settings import ADDED_FIELDS, FIELDS, REQUIRED, VENDOR

TIMESTAMP = ARROW_TYPES["timestamp"]
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)
_EMPTY: dict[str, Any] = {}
# Per table: the top-level keys the contract names, and the column names already in use.
_TOP_LEVEL = {table: {path.partition(".")[0] for _, path, _ in FIELDS[table]} for table in FIELDS}
_TAKEN = {
    table: {column for column, _, _ in FIELDS[table]} | {column for column, _ in ADDED_FIELDS}
    for table in FIELDS
}


def new_event_mask(uuids: list[Any], uuids_read: set[str]) -> list[bool] | None:
    """Which of `uuids` are not in `uuids_read` (which then holds them all), or None when all
    are new: an event delivered twice in one run is loaded once. Nulls count as new (to be
    rejected later)."""
    keep = []
    for uuid in uuids:
        keep.append(uuid is None or uuid not in uuids_read)
        if uuid is not None:
            uuids_read.add(uuid)
    return None if all(keep) else keep


def arrow_schema(table: str, extra: Sequence[pa.Field] = ()) -> pa.Schema:
    """The Arrow schema of `table`'s contract and added columns, then `extra`."""
    columns = [(column, kind) for column, _, kind in FIELDS[table]] + list(ADDED_FIELDS)
    fields = [
        pa.field(column, ARROW_TYPES[kind], nullable=column not in REQUIRED)
        for column, kind in columns
    ]
    return pa.schema([*fields, *extra])


def events_to_arrow(
    table: str,
    items: list[msgspec.Raw],
    uuids_read: set[str],
    *,
    tenant: str,
    observed_at: datetime,
    endpoint: str,
) -> pa.Table:
    """One page's items (their JSON text) as a typed Arrow table of the events whose `uuid` is
    not in `uuids_read` (which then holds them): the documented fields flattened into columns,
    unknown top-level keys as text columns (`unknown_columns`), the item's text as `raw`."""
    raws = [bytes(item) for item in items]
    objects = [msgspec.json.decode(raw) for raw in raws]  # each an object: the paginator checked
    arrays = _documented_columns(table, objects)
    names = [column for column, _, _ in FIELDS[table]]
    keep = new_event_mask(arrays[names.index("uuid")].to_pylist(), uuids_read)
    if keep is not None:
        mask = pa.array(keep)
        arrays = [array.filter(mask) for array in arrays]
        raws = list(itertools.compress(raws, keep))
        objects = list(itertools.compress(objects, keep))
    for name in ("uuid", "timestamp"):  # required: the merge key and the day an event counts for
        missing = arrays[names.index(name)].null_count
        if missing:
            raise MalformedResponseError(
                f"{VENDOR}: {endpoint} returned {missing} item(s) without a valid {name!r}"
            )
    count = len(raws)
    timestamps = arrays[names.index("timestamp")]
    arrays += [
        pa.repeat(pa.scalar(tenant, pa.string()), count),
        pc.cast(timestamps, pa.date32()),
        pa.repeat(pa.scalar(observed_at, TIMESTAMP), count),
        pa.array(raws, pa.binary()).cast(pa.string()),
    ]
    extra_fields, extra_arrays = unknown_columns(
        objects, _TOP_LEVEL[table], _TAKEN[table], f"{VENDOR}: {endpoint}"
    )
    schema = arrow_schema(table, extra_fields)
    return pa.Table.from_arrays([*arrays, *extra_arrays], schema=schema)


def _documented_columns(table: str, items: list[dict[str, Any]]) -> list[pa.Array]:
    """The documented columns of `items`, each value coerced to its column's type."""
    nested: dict[str, list[dict[str, Any]]] = {}

    def values(path: str) -> list[Any]:
        head, _, key = path.partition(".")
        if not key:
            return [item.get(head) for item in items]
        if head not in nested:
            nested[head] = [_as_dict(item.get(head)) for item in items]
        return [parent.get(key) for parent in nested[head]]

    return [_to_array(values(path), kind) for _, path, kind in FIELDS[table]]


def combine(tables: list[pa.Table]) -> pa.Table | list[pa.Table]:
    """The pages' tables as one (columns only some pages have are null elsewhere), or the list
    as it is when an unknown column changed type between pages."""
    try:
        return pa.concat_tables(tables, promote_options="default")
    except _ARROW_ERRORS:
        return tables


def empty_events_table(table: str) -> pa.Table:
    """A table with `table`'s columns and no rows: loading it creates the table."""
    return arrow_schema(table).empty_table()


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else _EMPTY


def _to_array(values: list[Any], kind: str) -> pa.Array:
    """`values` as an Arrow array of `kind`; values of another type are coerced, or left null
    when they cannot be (the item's `raw` keeps them)."""
    if kind == "timestamp":
        return _timestamps(values)
    try:
        return pa.array(values, ARROW_TYPES[kind])
    except _ARROW_ERRORS:
        coerce = {"text": json_text, "bigint": _integer, "double": _number}[kind]
        return pa.array([coerce(value) for value in values], ARROW_TYPES[kind])


def _timestamps(values: list[Any]) -> pa.Array:
    texts = _to_array(values, "text")
    for unit in ("us", "ns"):  # nanosecond precision parses as ns, then truncates to us
        try:
            return pc.cast(pc.cast(texts, pa.timestamp(unit, tz="UTC")), TIMESTAMP, safe=False)
        except _ARROW_ERRORS:
            continue
    return pa.array([_parse_timestamp(value) for value in texts.to_pylist()], TIMESTAMP)


def _parse_timestamp(value: str | None) -> datetime | None:
    try:
        return parse_utc(value)
    except ValueError:
        return None


def _integer(value: Any) -> int | None:
    """`value` as a BIGINT, or None when it is not a whole number or does not fit one."""
    if isinstance(value, bool):
        return None
    whole = isinstance(value, float) and value.is_integer()
    if whole or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        value = int(value)
    return value if isinstance(value, int) and -(2**63) <= value < 2**63 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
