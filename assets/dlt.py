"""dlt sources as Dagster assets. Sources are built at run time, so no secret is read at import."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from assets.schedules import WRITER_POOL
from pipelines.failures import describe_failure
from pipelines.pipeline import make_pipeline, run_source
from pipelines.registry import SourceSpec
from pipelines.tenants import tenants_to_load
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
    """The assets of one source: one per table, materialised together by a load of each of its
    tenants (`pipelines.tenants`), through the CLI's run path (`run_source`). A tenant that
    fails does not stop the others; the step then fails with each one's line, as the CLI says
    it."""
    translator = WarehouseDltTranslator()
    # The definition-time source only lists the resources; the run builds its own from config.
    placeholder = spec.placeholder()
    pipeline = make_pipeline(spec.pipeline_name, location, spec.row_ids)

    def key(resource: Any) -> dg.AssetKey:
        return translator.get_asset_spec(
            DltResourceTranslatorData(resource=resource, pipeline=pipeline)
        ).key

    @dlt_assets(
        dlt_source=placeholder,
        dlt_pipeline=pipeline,
        name=spec.pipeline_name,
        dagster_dlt_translator=translator,
        pool=WRITER_POOL,
    )
    def load(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        selected = [
            name
            for name, resource in placeholder.resources.items()
            if key(resource) in context.selected_asset_keys
        ]
        metadata: dict[dg.AssetKey, Any] = {}  # each table's, from the last tenant loaded
        loaded, failures = [], []
        for tenant in tenants_to_load([spec.name]):
            try:
                # A backlog (an event source stops at its events-per-run cap) is loaded in
                # further runs within this step; Dagster records what the last one loaded.
                *_, (run_pipeline, source, info) = run_source(
                    spec, location, tenant.source_args(), selected, tenant.pipeline_name
                )
            except Exception as exc:
                line = describe_failure(exc)
                context.log.error(f"{tenant.label}: {line}")
                failures.append(f"{tenant.label}: {line}")
                continue
            loaded.append(tenant.label)
            for resource in source.selected_resources.values():
                metadata[key(resource)] = dlt.extract_resource_metadata(
                    context, resource, info, run_pipeline
                )
        for asset_key, table_metadata in metadata.items():
            yield dg.MaterializeResult(
                asset_key=asset_key, metadata={**table_metadata, "tenants": ", ".join(loaded)}
            )
        if failures:
            raise dg.Failure(
                description=f"{len(failures)} of {len(failures) + len(loaded)} tenants failed "
                f"to load: {'; '.join(failures)}"
            )

    return load
