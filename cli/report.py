"""`posture report`: one self-contained HTML page of posture trends from the published warehouse.

Every chart is a Plotly figure drawn by plotly.js, which the page carries inline once; the page's
Content-Security-Policy forbids every fetch, so it opens and draws with no network. Beside each
chart is the table it was drawn from, and the page says when each source was last loaded.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cli.output import format_value
from cli.scope import ORGANISATION_TENANTS, Period, organisations
from warehouse.location import WarehouseLocation

DEFAULT_PERIOD_DAYS = 90  # a quarter, what a posture review usually looks back on


@dataclass(frozen=True)
class Chart:
    """One trend chart: the query behind it and how its rows become lines or bars.

    `sql` selects the rows for `$organisation` between `$start` and `$end`; its first column is
    the x axis, `series` (a column) names one line per value, and each column in `values` is
    drawn (as `series · column` when there are several)."""

    key: str
    title: str
    sql: str
    series: str
    values: tuple[str, ...]
    kind: str = "line"  # or "bar"
    percent: bool = False


def _posture(columns: str, source: str) -> str:
    return f"""
        select posture.metric_date, posture.tenant, {columns}, posture.is_partial_day
        from marts.fct_daily_posture as posture
        join ({ORGANISATION_TENANTS}) as tenants
            on tenants.source = posture.source and tenants.tenant = posture.tenant
        where posture.source = '{source}' and tenants.organisation = $organisation
          and posture.metric_date between $start and $end
        order by posture.tenant, posture.metric_date
    """


CHARTS = (
    Chart(
        "organisation_headline",
        "The organisation's headline ratios, from its tenants' summed numerators and denominators",
        """
        select metric_date, organisation,
            users_logged_recent, users_has_records, total_users, login_coverage, vault_adoption,
            benchmarks_resolved, benchmarks_in_scope, benchmark_remediation_rate,
            signin_failures, signin_attempts, signin_failure_rate, is_partial_day
        from marts.fct_org_daily_posture
        where organisation = $organisation and metric_date between $start and $end
            -- days before the first Keeper snapshot or 1Password sign-in have no ratio to draw
            and coalesce(login_coverage, vault_adoption, benchmark_remediation_rate,
                signin_failure_rate) is not null
        order by metric_date
        """,
        "organisation",
        ("login_coverage", "vault_adoption", "benchmark_remediation_rate", "signin_failure_rate"),
        percent=True,
    ),
    Chart(
        "login_coverage",
        "Keeper login coverage (logged in within 30 days / all users)",
        _posture("users_logged_recent, total_users, login_coverage", "keeper"),
        "tenant",
        ("login_coverage",),
        percent=True,
    ),
    Chart(
        "vault_adoption",
        "Keeper vault adoption (users with records / all users)",
        _posture("users_has_records, total_users, vault_adoption", "keeper"),
        "tenant",
        ("vault_adoption",),
        percent=True,
    ),
    Chart(
        "dormant_users",
        "Keeper dormant users and users who never logged in",
        _posture("dormant_users, never_logged_in, total_users", "keeper"),
        "tenant",
        ("dormant_users", "never_logged_in"),
    ),
    Chart(
        "benchmark_remediation",
        "Keeper benchmark remediation (resolved / all but ignored)",
        _posture("benchmarks_resolved, benchmarks_in_scope, benchmark_remediation_rate", "keeper"),
        "tenant",
        ("benchmark_remediation_rate",),
        percent=True,
    ),
    Chart(
        "time_to_resolve",
        "Keeper benchmarks: days from first seen unresolved to resolved",
        f"""
        select remediation.benchmark_id, remediation.tenant, remediation.title,
            remediation.first_seen_unresolved_on, remediation.resolved_at,
            remediation.days_to_resolve, remediation.regression_count, remediation.current_status
        from marts.fct_keeper_benchmark_remediation as remediation
        join ({ORGANISATION_TENANTS}) as tenants
            on tenants.source = 'keeper' and tenants.tenant = remediation.tenant
        where tenants.organisation = $organisation
          and cast(remediation.resolved_at as date) between $start and $end
        order by remediation.tenant, remediation.days_to_resolve desc, remediation.benchmark_id
        """,
        "tenant",
        ("days_to_resolve",),
        kind="bar",
    ),
    Chart(
        "alert_trends",
        "Keeper alerts: occurrences in the trailing 30 days, per event type",
        f"""
        select trends.snapshot_date, trends.event_type,
            sum(trends.occurrences_30d) as occurrences_30d,
            sum(trends.occurrences_prev_30d) as occurrences_prev_30d,
            sum(trends.unique_users_30d) as unique_users_30d,
            bool_or(trends.is_new_event_type) as is_new_event_type
        from marts.fct_keeper_alert_trends as trends
        join ({ORGANISATION_TENANTS}) as tenants
            on tenants.source = 'keeper' and tenants.tenant = trends.tenant
        where tenants.organisation = $organisation
          and trends.snapshot_date between $start and $end
        group by trends.snapshot_date, trends.event_type
        order by trends.event_type, trends.snapshot_date
        """,
        "event_type",
        ("occurrences_30d",),
    ),
    Chart(
        "signin_failure_rate",
        "1Password sign-in failure rate (failed / all attempts)",
        _posture("signin_failures, signin_attempts, signin_failure_rate", "onepassword"),
        "tenant",
        ("signin_failure_rate",),
        percent=True,
    ),
    Chart(
        "item_reveals_exports",
        "1Password item reveals and exports",
        _posture("item_reveals, item_exports, vault_exports", "onepassword"),
        "tenant",
        ("item_reveals", "item_exports", "vault_exports"),
        kind="bar",
    ),
    Chart(
        "api_keys_privileged_changes",
        "Trend Micro Cloud One: API keys alive and privileged changes",
        _posture(
            "trend_api_keys_alive, trend_api_keys_created, trend_api_keys_deleted, "
            "trend_privileged_changes",
            "trend",
        ),
        "tenant",
        ("trend_api_keys_alive", "trend_privileged_changes"),
    ),
)

# When each source was last loaded: dlt's own record of completed loads, per dataset.
FRESHNESS_SQL = """
    select 'Keeper RMD' as source, max(inserted_at) as last_loaded_at, count(*) as loads
    from keeper_rmd._dlt_loads where status = 0
    union all
    select 'Trend Micro Cloud One', max(inserted_at), count(*)
    from trend_audit._dlt_loads where status = 0
    union all
    select '1Password Events', max(inserted_at), count(*)
    from onepassword_events._dlt_loads where status = 0
"""

# plotly.js reads nothing from outside the page; this says so to the browser, which refuses
# any fetch the page might still try.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f4f4f4; } .empty { color: #777; font-style: italic; }
.plotly-graph-div { height: 360px; }
"""


def report_period(con: Any, start: date | None, end: date | None) -> Period:
    """The chosen period; `end` defaults to the last day loaded, `start` to a quarter before."""
    if end is None:
        (latest,) = con.execute("select max(metric_date) from marts.fct_daily_posture").fetchone()
        end = latest or datetime.now(UTC).date()
    return Period(start or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1), end)


def write_report(
    location: WarehouseLocation,
    out: Path,
    organisation: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> Path:
    """Write the HTML report for the chosen organisations and period to `out`; returns its path."""
    from warehouse.connection import connect_published

    with connect_published(location) as con:
        period = report_period(con, start, end)
        names = organisations(con, organisation)
        freshness = _rows(con, FRESHNESS_SQL, {})
        sections = [_organisation_section(con, name, period) for name in names]
    page = _page(period, names, freshness, sections)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _rows(con: Any, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple]]:
    cursor = con.execute(sql, params)
    return [d[0] for d in cursor.description], cursor.fetchall()


def _organisation_section(con: Any, organisation: str, period: Period) -> str:
    params = {"organisation": organisation, "start": period.start, "end": period.end}
    parts = [f"<h2>{html.escape(organisation)}</h2>"]
    for chart in CHARTS:
        columns, rows = _rows(con, chart.sql, params)
        parts.append(f'<section class="chart" data-chart="{chart.key}">')
        parts.append(f"<h3>{html.escape(chart.title)}</h3>")
        if rows:
            parts.append(_figure_html(chart, columns, rows, f"{chart.key}-{organisation}"))
        else:
            parts.append('<p class="empty">No data in this period.</p>')
        parts.append(_table_html(columns, rows))
        parts.append("</section>")
    return "\n".join(parts)


def _figure_html(chart: Chart, columns: list[str], rows: list[tuple], div_id: str) -> str:
    import plotly.graph_objects as go

    x_index, series_index = 0, columns.index(chart.series)
    # A day still in progress (its counts still growing) is drawn open or pale, not as a drop.
    partial_index = columns.index("is_partial_day") if "is_partial_day" in columns else None
    figure = go.Figure()
    for value_column in chart.values:
        value_index = columns.index(value_column)
        for name in dict.fromkeys(row[series_index] for row in rows):
            mine = [row for row in rows if row[series_index] == name]
            label = f"{name} · {value_column}" if len(chart.values) > 1 else str(name)
            xs = [row[x_index] for row in mine]
            ys = [row[value_index] for row in mine]
            partial = [partial_index is not None and row[partial_index] for row in mine]
            if chart.kind == "bar":
                opacity = [0.35 if p else 1.0 for p in partial]
                figure.add_trace(go.Bar(x=xs, y=ys, name=label, marker_opacity=opacity))
            else:
                symbols = ["circle-open" if p else "circle" for p in partial]
                figure.add_trace(
                    go.Scatter(x=xs, y=ys, name=label, mode="lines+markers", marker_symbol=symbols)
                )
    figure.update_layout(
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 20, "b": 40},
        legend={"orientation": "h", "y": -0.15},
        xaxis_title=columns[x_index],
        yaxis_tickformat=".0%" if chart.percent else None,
    )
    return figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def _table_html(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(
    period: Period, names: list[str], freshness: tuple[list[str], list[tuple]], sections: list[str]
) -> str:
    from plotly.offline import get_plotlyjs

    generated = datetime.now(UTC).replace(microsecond=0).isoformat()
    title = f"Security posture {period.start} to {period.end}"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script>{get_plotlyjs()}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>Organisations: {html.escape(", ".join(names) or "none")}. Generated {generated}.
Open markers and pale bars are days still in progress (is_partial_day): their counts still grow.</p>
<h2>When each source was last loaded</h2>
{_table_html(*freshness)}
{"".join(sections)}
</body>
</html>
"""
