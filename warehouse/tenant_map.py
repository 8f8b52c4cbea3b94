"""The table `config.tenants`: which organisation each configured tenant belongs to, written
from the configuration file into the working file before every dbt build, so the models read
the mapping as data (`stg_config__tenants`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .location import WarehouseLocation

if TYPE_CHECKING:
    from pipelines.tenants import Tenant


def write_tenant_map(location: WarehouseLocation, tenants: list[Tenant] | None) -> None:
    """Replace `config.tenants` with (organisation, source, tenant) of each configured tenant
    (no rows without a configuration file). Call it in the working file's writer turn."""
    import duckdb

    rows = [(t.organisation, t.source, t.name) for t in tenants or []]
    with duckdb.connect(str(location.working_db)) as con:
        con.execute("create schema if not exists config")
        con.execute(
            "create or replace table config.tenants "
            "(organisation varchar not null, source varchar not null, tenant varchar not null)"
        )
        if rows:
            con.executemany("insert into config.tenants values (?, ?, ?)", rows)
