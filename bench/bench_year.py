"""Year-scale benchmark: what an hourly cycle costs on a warehouse holding a year of history, beside
the same cycle on a warehouse holding a month. Prints figures, asserts nothing.

    python bench/bench_year.py [--scale 1.0]

A 5,000-person company (at `--scale 1`) makes about 25 M 1Password events, 2 M Trend Micro events
and 1.8 M Keeper user-days a year. Each warehouse is made the way an installation grows, only
faster: one real load of each source over HTTP from the simulators (the tables, their schemas and
the sources' cursors), then DuckDB SQL copies those rows back over the period with new ids, times,
load ids and raw JSON, one hourly load at a time; one full `posture transform` builds the marts
and two `posture publish` runs make the published file and its spare, which later publishes bring
up to date. Then the hourly cycle runs as `posture` processes: an hour of new events from the
simulators through `posture load trend`, `posture load onepassword`, `posture transform` and
`posture publish` (the spare updated in place). Each step prints its seconds, its peak memory (the
process and the children it waited for: dbt), what it wrote to disk and the data folder's size
after it. A second hour runs with a reader that opened the published file before the first
hour's publish and never closed it, as a BI server that never reconnects: it holds the spare, so
that publish copies the published file instead (what every publish did before the spare), and
both publishes are printed side by side. Targets (issue 16): the year's cycle at most 2x the
month's, transform peak under 2 GB, data folder under 1.6x the working file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, bench_env, row, scratch_dir

ONEPASSWORD_PER_YEAR = {"signin_attempts": 6.0e6, "item_usages": 17.8e6, "audit_events": 1.2e6}
TREND_PER_YEAR = 2.0e6
KEEPER_USERS = 5000
TOKENS = {"keeper": "bench-keeper-token", "trend": "bench-trend-key", "op": "bench-op-token"}

# Columns each event table's copies get new values for; the rest are the template's.
EVENT_TABLES = {
    "trend_audit.audit_logs": ("id", '"time"'),
    "onepassword_events.signin_attempts": ("uuid", '"timestamp"'),
    "onepassword_events.item_usages": ("uuid", '"timestamp"'),
    "onepassword_events.audit_events": ("uuid", '"timestamp"'),
}


GROW = "import json; from bench_year import grow; print(json.dumps(grow({days}, {scale})))"
# A reader that opens the published file and keeps it open until its input closes.
HOLD_OPEN = (
    "import sys, duckdb; con = duckdb.connect(sys.argv[1], read_only=True); "
    "con.execute('select 1'); print('open', flush=True); sys.stdin.read()"
)


def simulators(scale: float):
    """The three simulators, sized like the company, with a day of history each."""
    from simulators.keeper_rmd import KeeperRmdSimulator
    from simulators.onepassword_events import FEATURES, OnePasswordEventsSimulator
    from simulators.trend_audit import TrendAuditSimulator

    per_day = {
        "signinattempts": ONEPASSWORD_PER_YEAR["signin_attempts"] / 365 * scale,
        "itemusages": ONEPASSWORD_PER_YEAR["item_usages"] / 365 * scale,
        "auditevents": ONEPASSWORD_PER_YEAR["audit_events"] / 365 * scale,
    }
    return {
        "keeper": KeeperRmdSimulator(
            users=max(10, int(KEEPER_USERS * scale)), seed=3, tokens=(TOKENS["keeper"],)
        ),
        "trend": TrendAuditSimulator(
            seed=3,
            api_keys={TOKENS["trend"]: None},
            events_per_day=TREND_PER_YEAR / 365 * scale,
            history_days=1,
        ),
        "onepassword": OnePasswordEventsSimulator(
            seed=3,
            tokens={TOKENS["op"]: FEATURES},
            users=max(10, int(KEEPER_USERS * scale)),
            events_per_day=per_day,
            history_days=1,
        ),
    }


def source_env(urls: dict[str, str], data_dir: Path) -> dict[str, str]:
    return bench_env(
        POSTURE_DATA_DIR=str(data_dir),
        SOURCES__KEEPER_RMD__BASE_URL=urls["keeper"],
        SOURCES__KEEPER_RMD__API_TOKEN=TOKENS["keeper"],
        SOURCES__KEEPER_RMD__TENANT="bench",
        SOURCES__TREND_AUDIT__BASE_URL=urls["trend"],
        SOURCES__TREND_AUDIT__API_KEY=TOKENS["trend"],
        SOURCES__ONEPASSWORD_EVENTS__BASE_URL=urls["onepassword"],
        SOURCES__ONEPASSWORD_EVENTS__TOKEN=TOKENS["op"],
        SOURCES__ONEPASSWORD_EVENTS__TENANT="bench-op",
    )


def posture(env: dict[str, str], *args: str) -> tuple[float, float, float]:
    """Run `posture args` in its own process; (seconds, peak RSS in MB of it and of the children
    it waited for, GB they wrote to disk). Its output goes to a file, shown when it fails."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status):
            output.seek(0)
            tail = output.read().decode(errors="replace")[-4000:]
            raise RuntimeError(f"posture {' '.join(args)} failed:\n{tail}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_oublock * 512 / 1e9


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def replacements(con, table: str, values: dict[str, str]) -> str:
    """`expression as column` for each of `values` that `table` has."""
    columns = {name for (name, *_) in con.execute(f"describe {table}").fetchall()}
    return ", ".join(f'{sql} as "{name}"' for name, sql in values.items() if name in columns)


def grow(days: int, scale: float) -> dict[str, int]:
    """Copy each raw table's rows back over `days` days (one hourly load at a time) until it
    holds that period's share of a year; returns rows per table."""
    from warehouse.engine import connect_writer  # the warehouse the environment names

    counts = {}
    with connect_writer() as con:
        con.execute("set preserve_insertion_order = false")
        con.execute("set enable_progress_bar = false")
        con.execute("set memory_limit = '2GB'")
        for table, (key, time_column) in EVENT_TABLES.items():
            yearly = (
                TREND_PER_YEAR
                if table.startswith("trend")
                else ONEPASSWORD_PER_YEAR[table.split(".")[1]]
            )
            target = int(yearly * scale * days / 365)
            con.execute(f"create temp table template as select * from {table}")
            (template_rows, end) = con.execute(
                f"select count(*), min({time_column}) from template"
            ).fetchone()
            if not template_rows:
                con.execute("drop table template")
                continue
            new_values = {
                key.strip('"'): "new_key",
                time_column.strip('"'): "new_time",
                "event_date": "cast(new_time as date)",
                "observed_at": "date_trunc('hour', new_time) + interval 1 hour",
                "raw": f"replace(raw, {key}, new_key)",
                "_dlt_load_id": "printf('%.6f', epoch(date_trunc('hour', new_time) "
                "+ interval 1 hour))",
                "_dlt_id": "substr(new_key, 1, 14)",
            }
            # Event i of `target` lies i/target of the way through the period before `end`; it
            # was loaded at the top of the next hour, by that hour's load.
            con.execute(
                f"""
                insert into {table}
                with numbered as (
                    select *, row_number() over () - 1 as template_number from template
                ),
                copies as (
                    select
                        numbered.*,
                        cast(? as timestamptz)
                            - to_microseconds(cast(
                                (i + 1) * ({days} * 86400e6 / {target}) as bigint)) as new_time,
                        cast(uuid() as varchar) as new_key
                    from range({target}) as r(i)
                    inner join numbered on numbered.template_number = i % {template_rows}
                )
                select * exclude (template_number, new_time, new_key) replace (
                    {replacements(con, table, new_values)}
                )
                from copies
                """,
                [end],
            )
            con.execute("drop table template")
            counts[table] = target
        from pipelines.registry import SOURCES

        for name in SOURCES["keeper"].placeholder().resources:  # one table per resource
            table = f"keeper_rmd.{name}"
            con.execute(
                f"""
                insert into {table}
                select * exclude (d) replace ({
                    replacements(
                        con,
                        table,
                        {
                            "snapshot_date": "snapshot_date - cast(d as integer)",
                            "observed_at": "observed_at - to_days(cast(d as integer))",
                            "_dlt_load_id": "printf('%.6f', epoch(observed_at "
                            "- to_days(cast(d as integer))))",
                            "_dlt_id": "substr(cast(uuid() as varchar), 1, 14)",
                        },
                    )
                })
                from {table}, range(1, {days}) as r(d)
                """
            )
            counts[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
    return counts


def cycle(
    label: str,
    days: int,
    scale: float,
    root: Path,
    lake: dict[str, str] | None = None,
    kept: Path | None = None,
) -> dict[str, float]:
    """Build a warehouse of `days` days of history (on the lake, given its settings), then run
    and print one hourly cycle (on the embedded file, then one more with a reader holding the
    spare). Given `kept` (a folder of embedded warehouses), the warehouse is a copy of the one
    kept there under `label`, or is built and copied there first when none is."""
    from simulators.server import SimulatorServer
    from warehouse.location import WarehouseLocation

    data_dir = root / label
    sims = simulators(scale)
    servers = {name: SimulatorServer(sim).start() for name, sim in sims.items()}
    try:
        env = source_env({name: s.url for name, s in servers.items()}, data_dir)
        if lake:
            env.update(lake, POSTURE_DUCKLAKE_DATA_PATH=str(data_dir / "lake"))
        if kept and (kept / label).is_dir():
            counts = reuse(kept / label, data_dir, env, days)
        else:
            counts = build(data_dir, env, label, days, scale, lake)
            if kept:
                shutil.copytree(data_dir, kept / label / "warehouse")
                (kept / label / "rows.json").write_text(json.dumps(counts))
        reader = None
        if not lake:
            # A BI server connects now and never reconnects: after the next publish it holds the
            # spare, which the publish after that cannot update in place.
            reader = hold_open(env, WarehouseLocation(data_dir).published_db)
        for table, rows in counts.items():
            row(table, f"{rows:,}")
        try:
            figures = hour(env, data_dir, servers, lake, "")
            if reader:
                print("  the next hour, the reader still open (it holds the spare):")
                held = hour(env, data_dir, servers, lake, "held ")
                figures.update({k: v for k, v in held.items() if k.startswith("held publish")})
        finally:
            if reader:
                reader.stdin.close()
                reader.wait()
        return figures
    finally:
        for server in servers.values():
            server.stop()


def build(
    data_dir: Path,
    env: dict[str, str],
    label: str,
    days: int,
    scale: float,
    lake: dict[str, str] | None,
) -> dict[str, int]:
    """A warehouse of `days` days of history, built and (on the embedded file) published twice;
    returns rows per grown table."""
    for source in ("keeper", "trend", "onepassword"):
        posture(env, "load", source)
    # Grown in a child process: this one stays small, as its peak memory is inherited by the
    # steps it starts (the kernel keeps a process's high-water mark across exec).
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", GROW.format(days=days, scale=scale)],
        env=env,
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=True,
    )
    counts = json.loads(out.stdout.splitlines()[-1])
    grown = time.perf_counter() - started
    built, _, _ = posture(env, "transform")
    print(f"\n{label}: {days} days of history (grown in {grown:.0f} s, built in {built:.0f} s)")
    if not lake:
        # The installation has published before: the cycle's publish brings the spare (the file
        # published before the current one) up to date, as every hourly publish does.
        for step in ("first publish (from scratch)", "second publish (makes the spare)"):
            seconds, _, written = posture(env, "publish")
            row(step, f"{seconds:7.1f} s", f"wrote {written:5.2f} GB")
    return counts


def reuse(kept: Path, data_dir: Path, env: dict[str, str], days: int) -> dict[str, int]:
    """A copy of a kept warehouse, brought to the current models by a transform and published
    twice, as `build` leaves one; returns rows per grown table."""
    shutil.copytree(kept / "warehouse", data_dir)
    built, _, _ = posture(env, "transform")
    print(f"\n{data_dir.name}: {days} days of history (kept, transformed in {built:.0f} s)")
    for _ in range(2):
        posture(env, "publish")
    return json.loads((kept / "rows.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="share of a 5,000-person company (default 1)"
    )
    parser.add_argument(
        "--engine",
        choices=("duckdb", "ducklake", "both"),
        default="both",
        help="the embedded file, DuckLake on a PostgreSQL server started here, or both (default)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="embedded file only: keep each built warehouse in DIR (before its hours) and build "
        "from the copy kept there on later runs, so a change to the models is measured without "
        "growing a year again",
    )
    parser.add_argument(
        "--period",
        choices=("month", "year", "both"),
        default="both",
        help="the month's warehouse, the year's, or both side by side (default)",
    )
    args = parser.parse_args()
    root = scratch_dir("posture-bench-year-")
    print(f"year-scale benchmark at scale {args.scale} (5,000 people x {args.scale})")
    periods = [(p, d) for p, d in (("month", 30), ("year", 365)) if args.period in (p, "both")]
    if args.engine in ("duckdb", "both"):
        print("\n== embedded DuckDB file ==")
        compare(*(cycle(p, d, args.scale, root, kept=args.keep) for p, d in periods))
    if args.engine in ("ducklake", "both"):
        print("\n== DuckLake (PostgreSQL catalog, local data path) ==")
        compare(*on_the_lake(args.scale, root, periods))


def on_the_lake(
    scale: float, root: Path, periods: list[tuple[str, int]]
) -> tuple[dict[str, float], ...]:
    """The periods (label, days) on DuckLake, each in a database of a PostgreSQL server of its own
    (tests/postgres_server.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import PostgresServer

    server = PostgresServer().start()
    try:
        settings = {
            "POSTURE_WAREHOUSE": "ducklake",
            "PGPASSWORD": server.password,
        }
        return tuple(
            cycle(
                label,
                days,
                scale,
                root / "lake",
                {**settings, "POSTURE_DUCKLAKE_CATALOG": server.create_database(label)},
            )
            for label, days in periods
        )
    finally:
        server.stop()


def hour(
    env: dict[str, str],
    data_dir: Path,
    servers: dict,
    lake: dict[str, str] | None,
    prefix: str,
) -> dict[str, float]:
    """An hour of new events through the cycle's steps, each printed; its figures (names start
    with `prefix`)."""
    from warehouse.location import WarehouseLocation

    for name, server in servers.items():
        if name != "keeper":
            server.simulator.advance(hours=1)
    location = WarehouseLocation(data_dir)
    published, spare = location.published_db, location.published_spare
    figures: dict[str, float] = {}
    steps = [("load", "trend"), ("load", "onepassword"), ("transform",)]
    for step in steps if lake else [*steps, ("publish",)]:
        spare_before = spare.stat().st_ino if spare.exists() else None
        seconds, peak, written = posture(env, *step)
        total = folder_bytes(data_dir)
        name = " ".join(step)
        figures[f"{prefix}{name} s"] = seconds
        figures[f"{prefix}{name} MB"] = peak
        figures[f"{prefix}{name} GB"] = written
        # On the lake the folder is its data path (the catalog is in PostgreSQL).
        folder = f"folder {total / 1e9:5.2f} GB"
        if not lake:
            folder += f" = {total / (data_dir / 'posture.duckdb').stat().st_size:.2f}x working"
        if step == ("publish",):
            # In place when the published file is now the spare it found.
            in_place = spare_before == published.stat().st_ino
            name += " (spare in place)" if in_place else " (a copy)"
            folder += f", published {published.stat().st_size / 1e9:.2f} GB"
        row(
            f"posture {name}",
            f"{seconds:7.1f} s",
            f"peak {peak:6.0f} MB",
            f"wrote {written:5.2f} GB, {folder}",
        )
    figures[f"{prefix}cycle s"] = sum(v for k, v in figures.items() if k.endswith(" s"))
    if not lake:
        working = (data_dir / "posture.duckdb").stat().st_size
        figures[f"{prefix}disk ratio"] = folder_bytes(data_dir) / working
    row("hourly cycle", f"{figures[f'{prefix}cycle s']:7.1f} s")
    return figures


def hold_open(env: dict[str, str], path: Path) -> subprocess.Popen:
    """A reader process holding `path` open until its input is closed."""
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(path)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout.readline().strip() == "open"
    return reader


def compare(month: dict[str, float], year: dict[str, float] | None = None) -> None:
    """The year's figures beside the month's (nothing when only one period ran)."""
    if year is None:
        return
    print("\nyear beside month")
    row("hourly cycle", f"{year['cycle s'] / month['cycle s']:.2f}x", "target <= 2x")
    row("transform peak", f"{year['transform MB']:.0f} MB", "target < 2048 MB")
    if "disk ratio" in year:
        row("data folder / working file", f"{year['disk ratio']:.2f}x", "target < 1.6x")
        for label, key in (
            ("publish, spare in place", "publish"),
            ("publish, a copy", "held publish"),
        ):
            row(
                label,
                f"month {month[f'{key} s']:6.1f} s, wrote {month[f'{key} GB']:5.2f} GB",
                f"year {year[f'{key} s']:6.1f} s, wrote {year[f'{key} GB']:5.2f} GB",
            )


if __name__ == "__main__":
    main()
