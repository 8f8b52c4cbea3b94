"""Pages of records as Arrow tables: dlt loads them without its per-row normaliser.

Known columns get the type their dlt hint declares (present even when a page lacks them). Keys
the contract does not name become text columns (`unknown_columns`), so schema evolution still
turns them into new columns, and a vendor changing such a key's JSON type never breaks a load.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import orjson
import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention

from pipelines.vendor_http import MalformedResponseError

logger = logging.getLogger(__name__)

ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
# Columns dlt adds to every row (see pipelines/pipeline.py).
DLT_COLUMNS = frozenset(("_dlt_load_id", "_dlt_id"))
_NAMING = NamingConvention()  # the names dlt gives columns


def json_text(value: Any) -> str | None:
    """`value` as text: None and strings as they are, anything else as its JSON."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def unknown_columns(
    records: list[dict[str, Any]], known: Collection[str], taken: Collection[str], where: str
) -> tuple[list[pa.Field], list[pa.Array]]:
    """Text columns for the keys of `records` not in `known`, named as dlt names columns, every
    value as `json_text`.

    Text, because such a key's JSON type may change from one page or run to the next (a number,
    then a word): a column typed by its first values would then reject the later ones, or round
    them. Keys null in every record, and keys whose column name is in `taken` or repeats an
    earlier key's get no column; the latter are logged, naming `where`. Of `fooBar` and `foo_bar`,
    the key already named as its column keeps it.
    """
    unknown = {key for record in records for key in record}.difference(known)
    names = {key: _NAMING.normalize_identifier(key) for key in unknown}
    keys = sorted(names, key=lambda key: (names[key] != key, key))
    used = set(taken) | DLT_COLUMNS
    fields, arrays = [], []
    for key in keys:
        values = [json_text(record.get(key)) for record in records]
        if all(value is None for value in values):
            continue
        column = names[key]
        if column in used:
            logger.warning(
                "%s: field %r would be column %r, already taken; not kept", where, key, column
            )
            continue
        used.add(column)
        fields.append(pa.field(column, pa.string()))
        arrays.append(pa.array(values, pa.string()))
    return fields, arrays


def records_to_table(
    records: list[dict[str, Any]], hints: Mapping[str, Mapping[str, Any]], where: str
) -> pa.Table:
    """`records` as an Arrow table: the `hints` (dlt column hints) as typed columns, other keys
    as `unknown_columns`; `where` names the vendor endpoint in the error raised when a value
    does not fit its column."""
    fields, arrays = [], []
    for name, hint in hints.items():
        kind = ARROW_TYPES[hint["data_type"]]
        try:
            array = pa.array([record.get(name) for record in records]).cast(kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise MalformedResponseError(
                f"{where}: field {name!r} has a value that is not {hint['data_type']} ({exc})"
            ) from None
        fields.append(pa.field(name, kind, nullable=hint.get("nullable", True)))
        arrays.append(array)
    extra_fields, extra_arrays = unknown_columns(records, hints, hints, where)
    return pa.Table.from_arrays(arrays + extra_arrays, schema=pa.schema(fields + extra_fields))
