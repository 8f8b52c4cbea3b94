"""A BI tool's driver (SQLAlchemy with duckdb-engine, read-only) reads every mart of the published
file while a load, dbt build and publish run, and sees the old data or the new, never a mix."""

from __future__ import annotations

import shutil
import threading

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from cli.steps import load_source, publish_step, transform
from simulators.server import SimulatorServer
from warehouse.location import WarehouseLocation

# Two marts that must agree on one published file: the wide table holds one Keeper row per
# tenant and day of the Keeper KPI mart, and the organisation table sums its users.
AGREEMENT = """
select
    (select count(*) from marts.fct_keeper_daily_kpis) as keeper_days,
    (select count(*) from marts.fct_daily_posture where source = 'keeper') as posture_keeper_days,
    (select sum(total_users) from marts.fct_daily_posture) as tenant_users,
    (select sum(total_users) from marts.fct_org_daily_posture) as organisation_users
"""


# Column types every BI driver reads (no HUGEINT, no TIMESTAMP WITH TIME ZONE, no nested types).
BI_TYPES = {"BIGINT", "INTEGER", "DOUBLE", "DATE", "TIMESTAMP", "VARCHAR", "BOOLEAN"}


def read_like_a_dashboard(engine: sa.Engine) -> tuple[int, int]:
    """On one connection: every mart, row by row; returns (marts read, Keeper tenant-days)."""
    with engine.connect() as conn:
        marts = sa.inspect(conn).get_table_names(schema="marts")
        for table in marts:
            conn.execute(sa.text(f'select * from marts."{table}"')).fetchall()
        types = conn.execute(
            sa.text(
                "select table_name, column_name, data_type from information_schema.columns "
                "where table_schema = 'marts'"
            )
        ).fetchall()
        unreadable = [row for row in types if row.data_type not in BI_TYPES]
        assert not unreadable, f"column types BI drivers do not all read: {unreadable}"
        keeper_days, posture_days, tenant_users, org_users = conn.execute(sa.text(AGREEMENT)).one()
    assert keeper_days == posture_days and tenant_users == org_users, "marts of two publishes"
    return len(marts), keeper_days


def test_a_bi_driver_sees_old_or_new_marts_during_a_publish(
    demo_run, keeper_env: SimulatorServer, tmp_path, monkeypatch
):
    location = WarehouseLocation(tmp_path / "warehouse")
    shutil.copytree(demo_run.location.data_dir, location.data_dir)
    # the demo's organisations file, so the rebuilt marts keep its tenants' organisations
    monkeypatch.setenv("POSTURE_CONFIG", str(location.data_dir / "posture.toml"))
    # NullPool: each read opens the published file anew, as a dashboard refresh does.
    engine = sa.create_engine(
        f"duckdb:///{location.published_db}",
        connect_args={"read_only": True},
        poolclass=NullPool,
    )
    marts, old = read_like_a_dashboard(engine)
    assert marts >= 17
    # The new tenant's first snapshot is taken on the demo's last day, as a tenant added today
    # is: an hourly build reads what was loaded since its newest observation, less a lookback.
    with engine.connect() as conn:
        last_day = conn.execute(
            sa.text("select max(snapshot_date) from marts.fct_keeper_daily_kpis")
        ).scalar()
    keeper_env.simulator.advance(days=(last_day - keeper_env.simulator.now.date()).days)

    failures: list[BaseException] = []
    publishing = threading.Event()

    def load_build_publish() -> None:
        try:
            load_source("keeper", location, quiet=True)  # a second Keeper tenant, "acme"
            transform(location, quiet=True)
            publishing.set()
            publish_step(location, quiet=True)
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=load_build_publish)
    writer.start()
    seen = [old]
    while writer.is_alive():
        seen.append(read_like_a_dashboard(engine)[1])
        # Back to back once the publish starts, where a mix could show; paced before it: the
        # load and the build leave the published file alone, and reading it flat out would
        # only take their processor.
        publishing.wait(1.0)
    writer.join()
    assert not failures, failures
    reads_during_the_run = len(seen) - 1
    seen.append(read_like_a_dashboard(engine)[1])

    new = seen[-1]
    assert new == old + 1  # the new tenant's first snapshot
    assert set(seen) == {old, new}
    assert seen == sorted(seen)  # once the new file is seen, the old one never comes back
    assert reads_during_the_run >= 2
