"""The table `config.tenants`: which organisation each configured tenant belongs to, written
from the configuration file into the warehouse before every dbt build, so the models read the
mapping as data (`stg_config__tenants`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .engine import connect_writer
from .location import WarehouseLocation

if TYPE_CHECKING:
    from pipelines.tenants import Tenant


def write_tenant_map(location: WarehouseLocation, tenants: list[Tenant] | None) -> None:
    """Replace `config.tenants` with (organisation, source, tenant) of each configured tenant
    (no rows without a configuration file), in the working file (call it in the file's writer
    turn) or, on the DuckLake engine, in the lake that dbt builds."""
    rows = [(t.organisation, t.source, t.name) for t in tenants or []]
    with connect_writer(location) as con:
        con.execute("create schema if not exists config")
        con.execute(
            "create or replace table config.tenants "
            "(organisation varchar not null, source varchar not null, tenant varchar not null)"
        )
        if rows:
            con.executemany("insert into config.tenants values (?, ?, ?)", rows)
