"""Publishing as an asset: after the models build, readers get a fresh read-only copy."""

import dagster as dg

from assets.schedules import WRITER_POOL
from warehouse.engine import DUCKLAKE, LAKE_PUBLISH_NOTE, ducklake_settings
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
        description="Read-only copy of the warehouse that BI tools and analysts open.",
    )
    def published_warehouse() -> dg.MaterializeResult:
        if ducklake_settings():
            return dg.MaterializeResult(metadata={"engine": DUCKLAKE, "note": LAKE_PUBLISH_NOTE})
        result = publish(location)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(result.path)),
                "bytes": result.bytes,
                "seconds": round(result.seconds, 3),
            }
        )

    return published_warehouse
