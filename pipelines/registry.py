"""The sources this warehouse loads, by the short name the CLI and Dagster use.

Cheap to import (the CLI reads it at start-up): dlt is imported only when a source runs."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

from warehouse.location import WarehouseLocation

# The resource-state key under which a source that loads in runs says it stopped at its
# events-per-run cap with more to load; it removes the key once it reaches the end.
BACKLOG = "backlog"


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
    # Loads a bounded number of events per run, saying under `BACKLOG` that more remain.
    loads_in_runs: bool = False

    def source(self, **args: Any) -> Any:
        """The dlt source, built with `args` (and `BACKLOG` as its `backlog_key` if it loads in
        runs); its module is imported on demand, as dlt is slow to import."""
        module, function = self.factory.split(":")
        factory = getattr(importlib.import_module(module), function)
        return factory(**({"backlog_key": BACKLOG} if self.loads_in_runs else {}), **args)

    def placeholder(self) -> Any:
        """The source built from `placeholder_args`, only to list its resources."""
        return self.source(**dict(self.placeholder_args))


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
            loads_in_runs=True,
        ),
        SourceSpec(
            "onepassword",
            "onepassword_events",
            "pipelines.onepassword_events:onepassword_events",
            "1Password Events",
            "SOURCES__ONEPASSWORD_EVENTS__",
            "token",
            (("base_url", "https://events.1password.com"), ("token", "placeholder")),
            loads_in_runs=True,
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
    """Run one source into the warehouse through its pipeline, or `pipeline_name` (one
    tenant's, see `pipelines.tenants`), until it has no backlog (`run_source`); returns dlt's
    LoadInfo of each run."""
    from pipelines.pipeline import run_source  # dlt: slow to import

    runs = run_source(SOURCES[name], location, source_args, pipeline_name=pipeline_name)
    return [info for _, _, info in runs]
