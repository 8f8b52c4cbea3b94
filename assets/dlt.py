"""dlt sources as Dagster assets. Sources are built at run time, so no secret is read at import."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from assets.schedules import WRITER_POOL
from pipelines.pipeline import LOADER_FILE_FORMAT, make_pipeline, run_in_parts
from pipelines.registry import SourceSpec
from pipelines.tenants import tenants_to_load
from pipelines.vendor_http import find_vendor_error
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
    """The assets of one source: one per table, materialised together by a run of each of its
    tenants' pipelines (`pipelines.tenants`). A tenant that fails does not stop the others;
    the step then fails naming it."""
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
        results: dict[dg.AssetKey, Any] = {}  # each table's materialisation, once
        loaded, failed = [], []
        for tenant in tenants_to_load([spec.name]):
            try:
                args = tenant.source_args()

                def run(pipeline: Any, args: dict[str, Any] = args) -> list[Any]:
                    return list(
                        dlt.run(
                            context=context,
                            dlt_source=spec.source_factory()(**args),
                            dlt_pipeline=pipeline,
                            loader_file_format=LOADER_FILE_FORMAT,
                        )
                    )

                # A backlog (an event source stops at its events-per-load cap) is loaded in
                # further runs within this step; Dagster records the last one's results.
                *_, last = run_in_parts(spec, location, run, tenant.pipeline_name)
            except Exception as exc:
                reason = str(find_vendor_error(exc) or exc).splitlines() or [type(exc).__name__]
                context.log.error(f"{tenant.label}: {reason[0]}")
                failed.append(tenant.label)
                continue
            loaded.append(tenant.label)
            results.update((result.asset_key, result) for result in last)
        for result in results.values():
            yield dg.MaterializeResult(
                asset_key=result.asset_key,
                metadata={**(result.metadata or {}), "tenants": ", ".join(loaded)},
            )
        if failed:
            raise dg.Failure(
                f"{len(failed)} of {len(failed) + len(loaded)} tenants failed to "
                f"load: {', '.join(failed)}"
            )

    return load
