"""`posture`: load, transform, publish and query the security-posture warehouse.

Start-up stays fast: dlt, dbt and Dagster are imported only inside the commands that use them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pipelines.registry import SOURCES
from warehouse.location import DATA_DIR_ENV, current_location

AS_OF_HELP = "what the warehouse said at this time (DuckLake engine only)"
BENCHMARK_STATUSES = ("RESOLVED", "UNRESOLVED", "IGNORED")  # what set_security_benchmarks takes
MAX_KPI_DAYS = 36_525  # a century: more than any warehouse holds, well within DuckDB's dates


def _load(args: argparse.Namespace) -> int:
    from cli.errors import describe
    from cli.steps import load_source
    from pipelines.registry import enabled_sources
    from pipelines.tenants import tenants_to_load

    sources = [s.name for s in enabled_sources()] if args.source == "all" else [args.source]
    tenants = tenants_to_load(sources)
    if not tenants:
        raise ValueError(f"the configuration file names no tenant of {', '.join(sources)}")
    if args.source != "all" and len(tenants) == 1:
        load_source(tenants[0], current_location())
        return 0
    failures = []  # (tenant, message, exit code): one tenant failing does not stop the others
    for tenant in tenants:
        try:
            load_source(tenant, current_location())
        except Exception as exc:
            failures.append((tenant.label, *describe(exc)))
    for label, message, _ in failures:
        print(f"posture load {label}: error: {message}", file=sys.stderr)
    return max((code for *_, code in failures), default=0)


def _transform(args: argparse.Namespace) -> None:
    from cli.steps import transform

    transform(current_location(), full_refresh=args.full_refresh)


def _publish(args: argparse.Namespace) -> None:
    from cli.steps import publish_step

    publish_step(current_location(), force=args.force)


def _kpis(args: argparse.Namespace) -> None:
    from cli.steps import print_kpis

    print_kpis(current_location(), days=args.days, tenant=args.tenant, as_of=args.as_of)


def _sql(args: argparse.Namespace) -> None:
    from cli.steps import print_sql

    print_sql(current_location(), args.query, max_rows=args.max_rows, as_of=args.as_of)


def _report(args: argparse.Namespace) -> None:
    from cli.report import write_report

    location = current_location()
    out = args.out or location.data_dir / "report.html"
    print(write_report(location, out, args.org, args.start, args.end))


def _evidence(args: argparse.Namespace) -> None:
    from cli.evidence import write_evidence
    from cli.scope import Period

    if args.start is None or args.end is None:
        raise ValueError("--from and --to are required: the observation period, e.g. a quarter")
    period = Period(args.start, args.end)
    location = current_location()
    out = args.out or location.data_dir / "evidence" / f"{period.start}_{period.end}"
    print(write_evidence(location, out, period, args.org))


def _evidence_verify(args: argparse.Namespace) -> None:
    from cli.evidence import verify_evidence

    checked = verify_evidence(args.folder)
    print(f"{args.folder}: all {checked} files match the manifest")


def _demo(args: argparse.Namespace) -> None:
    from cli.demo import run_demo

    run_demo(days=args.days, users=args.users, seed=args.seed)


def _simulate(args: argparse.Namespace) -> None:
    from cli.demo import serve_simulators

    serve_simulators(port=args.port, users=args.users, seed=args.seed)


def _benchmarks_set(args: argparse.Namespace) -> None:
    from cli.steps import set_benchmark

    set_benchmark(args.benchmark_id, args.status, args.tenant)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return number


def _kpi_days(value: str) -> int:
    number = _positive(value)
    if number > MAX_KPI_DAYS:
        raise argparse.ArgumentTypeError(f"{value} is more than {MAX_KPI_DAYS} days (a century)")
    return number


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-01-31") from None


def _timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a timestamp (like 2026-01-15T08:00:00Z; UTC when no zone is given)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _benchmark_id(value: str) -> str:
    if not value.startswith("SB_") or not value.replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a benchmark id (they look like SB_CREATE_ALERTS)"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also documents every command)."""
    parser = argparse.ArgumentParser(
        prog="posture",
        description="Security-posture warehouse: vendor APIs -> DuckDB history -> daily KPIs.",
    )
    parser.add_argument(
        "--data-dir",
        help=f"warehouse folder (default: ${DATA_DIR_ENV} or ./data)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int | None], help: str) -> Any:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    demo = command("demo", _demo, "simulate vendors and run N days through load, dbt and publish")
    demo.add_argument("--days", type=_positive, default=30, help="simulated days (default 30)")
    demo.add_argument("--users", type=_positive, default=300, help="Keeper users (default 300)")
    demo.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")

    load = command("load", _load, "load one source (or all) into the working warehouse")
    load.add_argument("source", choices=(*SOURCES, "all"))

    transform = command("transform", _transform, "build the dbt models and run their tests")
    transform.add_argument(
        "--full-refresh", action="store_true", help="rebuild incremental models from all history"
    )
    publish = command(
        "publish",
        _publish,
        "publish what BI tools and analysts read (a read-only copy; DuckLake: a commit)",
    )
    publish.add_argument(
        "--force", action="store_true", help="publish even though the last dbt build failed"
    )

    kpis = command("kpis", _kpis, "print the daily KPI table from the published warehouse")
    kpis.add_argument("--days", type=_kpi_days, default=7, help="last N days (default 7)")
    kpis.add_argument("--tenant", help="only this tenant")
    kpis.add_argument("--as-of", type=_timestamp, help=AS_OF_HELP)

    sql = command("sql", _sql, "run a read-only SQL query on the published warehouse")
    sql.add_argument("query")
    sql.add_argument(
        "--max-rows", type=_positive, default=1000, help="rows to print at most (default 1000)"
    )
    sql.add_argument("--as-of", type=_timestamp, help=AS_OF_HELP)

    report = command("report", _report, "write the posture trends as one self-contained HTML page")
    report.add_argument("--org", help="only this organisation (default: every one)")
    report.add_argument("--from", dest="start", type=_date, help="first day (YYYY-MM-DD)")
    report.add_argument("--to", dest="end", type=_date, help="last day (default: last loaded)")
    report.add_argument("--out", type=Path, help="HTML file (default: DATA_DIR/report.html)")

    evidence = command("evidence", _evidence, "write an auditor's evidence pack for a period")
    evidence.add_argument("--org", help="only this organisation (default: every one)")
    evidence.add_argument("--from", dest="start", type=_date, help="first day (YYYY-MM-DD)")
    evidence.add_argument("--to", dest="end", type=_date, help="last day (YYYY-MM-DD)")
    evidence.add_argument("--out", type=Path, help="folder (default: DATA_DIR/evidence/FROM_TO)")
    checks = evidence.add_subparsers(dest="action", metavar="ACTION")
    verify = checks.add_parser("verify", help="re-hash a pack's files against its manifest")
    verify.set_defaults(handler=_evidence_verify)
    verify.add_argument("folder", type=Path, metavar="DIR")

    simulate = command("simulate", _simulate, "serve the vendor simulators on loopback")
    simulate.add_argument("--port", type=int, default=8700, help="first port (default 8700)")
    simulate.add_argument("--users", type=_positive, default=300, help="Keeper users")
    simulate.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")

    benchmarks = command("benchmarks", lambda _: None, "Keeper security benchmarks")
    actions = benchmarks.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_cmd = actions.add_parser("set", help="set a benchmark's status (POST to Keeper)")
    set_cmd.set_defaults(handler=_benchmarks_set)
    set_cmd.add_argument("benchmark_id", type=_benchmark_id, metavar="ID")
    set_cmd.add_argument("status", type=str.upper, choices=BENCHMARK_STATUSES)
    set_cmd.add_argument("--tenant", help="the Keeper tenant (needed when several are configured)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    return _execute(build_parser().parse_args(argv))


def run() -> None:
    """The `posture` program: `main` on this process's arguments, then exit."""
    sys.exit(main())


def _execute(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ[DATA_DIR_ENV] = args.data_dir
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line, never a traceback with config in it
        from cli.errors import describe

        message, code = describe(exc)
        print(f"posture {args.command}: error: {message}", file=sys.stderr)
        return code
    return code or 0


if __name__ == "__main__":
    run()
