"""dlt sources as Dagster assets. Sources are built at run time, so no secret is read at import."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from assets.schedules import WRITER_POOL
from pipelines.pipeline import LOADER_FILE_FORMAT, make_pipeline, run_in_parts
from pipelines.registry import SourceSpec
from warehouse.location import WarehouseLocation


class WarehouseDltTranslator(DagsterDltTranslator):
    """Keys each table as `[dataset, table]`, the key dbt gives the same table as a source, so
    loads and models form one lineage graph."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(
            key=dg.AssetKey([data.resource.source_name, data.resource.table_name]),
            deps=[],
            group_name=data.resource.source_name,
        )


def build_dlt_assets(spec: SourceSpec, location: WarehouseLocation) -> dg.AssetsDefinition:
    """The assets of one source: one per table, materialised together by one pipeline run."""
    # The definition-time source only lists the resources; the run builds its own from config.
    placeholder = spec.source_factory()(**dict(spec.placeholder_args))

    @dlt_assets(
        dlt_source=placeholder,
        dlt_pipeline=make_pipeline(spec.pipeline_name, location, spec.row_ids),
        name=spec.pipeline_name,
        dagster_dlt_translator=WarehouseDltTranslator(),
        pool=WRITER_POOL,
    )
    def load(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        def run(pipeline: Any) -> list[Any]:
            source = spec.source_factory()()
            return list(
                dlt.run(
                    context=context,
                    dlt_source=source,
                    dlt_pipeline=pipeline,
                    loader_file_format=LOADER_FILE_FORMAT,
                )
            )

        # A backlog (an event source stops at its events-per-load cap) is loaded in further
        # runs within this step; Dagster records the materialisations of the last one.
        *_, last = run_in_parts(spec, location, run)
        yield from last

    return load
