"""Publishing as an asset: after the models build, readers get a fresh read-only copy."""

import dagster as dg

from assets.schedules import WRITER_POOL
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
        result = publish(location)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(result.path)),
                "bytes": result.bytes,
                "seconds": round(result.seconds, 3),
            }
        )

    return published_warehouse
