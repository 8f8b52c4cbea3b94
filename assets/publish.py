"""Publishing as an asset: after the models build, readers get a fresh read-only copy (on
DuckLake, the lake's newest whole commit)."""

import dagster as dg

from assets.schedules import WRITER_POOL
from warehouse.engine import DUCKLAKE, ducklake_settings
from warehouse.location import WarehouseLocation
from warehouse.publish import publish


def build_publish_asset(
    location: WarehouseLocation, upstream: dg.AssetsDefinition
) -> dg.AssetsDefinition:
    """The published copy, downstream of every dbt model."""

    @dg.asset(
        name="published_warehouse",
        group_name="publish",
        deps=list(upstream.keys),
        kinds={"duckdb"},
        pool=WRITER_POOL,
        description=(
            "What BI tools and analysts read: a read-only copy of the warehouse, or on DuckLake "
            "the commit they read."
        ),
    )
    def published_warehouse() -> dg.MaterializeResult:
        if lake := ducklake_settings():
            from warehouse.ducklake import publish_lake

            return dg.MaterializeResult(
                metadata={"engine": DUCKLAKE, "snapshot_id": publish_lake(lake, location)}
            )
        result = publish(location)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(result.path)),
                "bytes": result.bytes,
                "seconds": round(result.seconds, 3),
                "in_place": result.in_place,
            }
        )

    return published_warehouse
