"""Pages of records as Arrow tables: dlt loads them without its per-row normaliser.

Known columns get the type their dlt hint declares (present even when a page lacks them);
columns the vendor added are inferred, so schema evolution still turns them into new columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from pipelines.vendor_http import MalformedResponseError

ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def records_to_table(
    records: list[dict[str, Any]], hints: Mapping[str, Mapping[str, Any]], where: str
) -> pa.Table:
    """`records` as an Arrow table typed by `hints` (dlt column hints); `where` names the
    vendor endpoint in the error raised when a value does not fit its column."""
    try:
        table = pa.Table.from_pylist(records)
        for name, hint in hints.items():
            if name not in table.column_names:
                kind = ARROW_TYPES[hint["data_type"]]
                table = table.append_column(name, pa.nulls(len(table), kind))
        fields = [
            pa.field(
                field.name,
                ARROW_TYPES[hints[field.name]["data_type"]],
                nullable=hints[field.name].get("nullable", True),
            )
            if field.name in hints
            else field
            for field in table.schema
        ]
        table = table.cast(pa.schema(fields))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise MalformedResponseError(f"{where}: a value does not fit its column ({exc})") from None
    return table
