"""dlt sources as Dagster assets. Sources are built at run time, so no secret is read at import."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from pipelines.pipeline import LOADER_FILE_FORMAT, has_backlog, loading_pipeline, make_pipeline
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
    )
    def load(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        # A backlog (an event source stops at its events-per-load cap) is loaded in further
        # runs within this step; Dagster records the materialisations of the last one.
        part = 1
        while True:
            with loading_pipeline(spec.pipeline_name, location, spec.row_ids) as pipeline:
                results = list(
                    dlt.run(
                        context=context,
                        dlt_source=spec.source_factory()(),
                        dlt_pipeline=pipeline,
                        loader_file_format=LOADER_FILE_FORMAT,
                    )
                )
                if not has_backlog(pipeline, spec.pipeline_name):
                    yield from results
                    return
            context.log.info(f"{spec.vendor}: loaded part {part} of a backlog; loading the next")
            part += 1

    return load
