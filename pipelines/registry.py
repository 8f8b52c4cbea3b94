"""The sources this warehouse loads, by the short name the CLI and Dagster use.

Cheap to import (the CLI reads it at start-up): dlt is imported only when a source runs."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warehouse.location import WarehouseLocation


@dataclass(frozen=True)
class SourceSpec:
    """One vendor source: its CLI name, dlt pipeline/dataset name and source factory."""

    name: str  # short name: `posture load <name>`
    pipeline_name: str  # dlt pipeline, dataset (DuckDB schema) and dbt source name
    factory: str  # "module:function" of the dlt source
    vendor: str  # for people
    env_prefix: str  # where its config and secrets come from
    token_arg: str  # the source argument that takes the tenant's token
    # Arguments that build the source without config, only to list its resources (Dagster
    # needs them at definition time; no request is made and no secret is read).
    placeholder_args: tuple[tuple[str, str], ...] = ()
    row_ids: bool = False  # add `_dlt_id` to every row (tables without a natural key)
    # The DuckDB pool of its loads (None: `warehouse.connection`'s default, what insert-only
    # merges need); `POSTURE_LOAD_MEMORY_LIMIT` overrides it.
    load_memory_limit: str | None = None

    def source_factory(self) -> Callable[..., Any]:
        """The dlt source function (imported on demand: dlt is slow to import)."""
        module, function = self.factory.split(":")
        return getattr(importlib.import_module(module), function)


SOURCES: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        SourceSpec(
            "keeper",
            "keeper_rmd",
            "pipelines.keeper_rmd:keeper_rmd",
            "Keeper RMD",
            "SOURCES__KEEPER_RMD__",
            "api_token",
            (("base_url", "https://keepersecurity.com"), ("api_token", "placeholder")),
            row_ids=True,  # alert detail rows have no key of their own
        ),
        SourceSpec(
            "trend",
            "trend_audit",
            "pipelines.trend_audit:trend_audit",
            "Trend Micro Cloud One",
            "SOURCES__TREND_AUDIT__",
            "api_key",
            (
                ("base_url", "https://audit.us-1.cloudone.trendmicro.com"),
                ("api_key", "placeholder"),
            ),
        ),
        SourceSpec(
            "onepassword",
            "onepassword_events",
            "pipelines.onepassword_events:onepassword_events",
            "1Password Events",
            "SOURCES__ONEPASSWORD_EVENTS__",
            "token",
            (("base_url", "https://events.1password.com"), ("token", "placeholder")),
            # Its delete-insert merge needs less than the default: 32 MB is about 30 MB less
            # peak at 200,000 events (a merge into 16 million rows fit in 24 MB).
            load_memory_limit="32MB",
        ),
    )
}


SOURCES_ENV = "POSTURE_SOURCES"


def enabled_sources() -> list[SourceSpec]:
    """The sources this installation loads: `POSTURE_SOURCES` (comma-separated short names),
    default all. Dagster's jobs and `posture load all` run these."""
    wanted = [n.strip() for n in os.environ.get(SOURCES_ENV, "").split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(SOURCES))
    if unknown:
        raise ValueError(
            f"{SOURCES_ENV} names unknown source(s) {', '.join(unknown)}; "
            f"known: {', '.join(SOURCES)}"
        )
    return [SOURCES[name] for name in wanted] if wanted else list(SOURCES.values())


def load(
    name: str, location: WarehouseLocation, pipeline_name: str | None = None, **source_args: Any
) -> list[Any]:
    """Run one source's pipeline (its own, or `pipeline_name`: one tenant's, see
    `pipelines.tenants`) into the warehouse until it has no backlog; returns dlt's LoadInfo of
    each run.

    The event sources bring a bounded number of events per run and keep their place, so a long
    backfill is several runs, each committed on its own: memory stays flat, and a failure loses
    only the run in progress. A failed run leaves no half-extracted package behind, so the next
    run starts clean. Its cursors and state are not committed, but tables it had already merged
    keep those rows (dlt commits each table's load on its own): the next run, from the last
    committed place, merges them again, and the merge keys store each row once."""
    from pipelines.pipeline import LOADER_FILE_FORMAT, run_in_parts  # dlt: slow to import

    spec = SOURCES[name]

    def run(pipeline: Any) -> Any:
        pipeline.abort_packages()
        source = spec.source_factory()(**source_args)
        info = pipeline.run(source, loader_file_format=LOADER_FILE_FORMAT)
        info.raise_on_failed_jobs()
        return info

    return list(run_in_parts(spec, location, run, pipeline_name))
