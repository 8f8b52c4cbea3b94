"""`posture report`: the page opens in a real browser with no network and every chart draws."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from cli.main import main
from cli.report import CHARTS
from tests.conftest import wait_for_system_packages

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=20000",
    "--dump-dom",
]
CHART_DIV = re.compile(r'<div id="([^"]+)" class="plotly-graph-div')
# Chromium logs each request the page's Content-Security-Policy refused as a console message.
REFUSED = re.compile(r"CONSOLE.*(violates the following Content Security Policy|Refused to)")


@dataclass(frozen=True)
class Rendered:
    """A page as headless Chromium left it: the DOM after its scripts ran, and its console."""

    dom: str
    console: list[str]

    def traces_per_chart(self) -> dict[str, int]:
        """Drawn data series (plotly's `trace` groups in the chart's SVG) per chart div."""
        parts = CHART_DIV.split(self.dom)
        return {parts[i]: parts[i + 1].count('class="trace ') for i in range(1, len(parts), 2)}

    def refused_requests(self) -> list[str]:
        return [line for line in self.console if REFUSED.search(line)]


def open_in_chromium(page: Path, profile: Path) -> Rendered:
    """Open `page` from disk in headless Chromium and wait (virtual time) for its scripts."""
    wait_for_system_packages()
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: `python3 dev.py test` installs it (Debian)")
    out = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return Rendered(out.stdout, [line for line in out.stderr.splitlines() if "CONSOLE" in line])


def test_the_demo_report_draws_every_chart_with_no_network(demo_run, tmp_path):
    report = demo_run.location.data_dir / "report.html"
    assert f"report: {report}" in demo_run.stdout

    rendered = open_in_chromium(report, tmp_path / "profile")

    assert "default-src 'none'" in rendered.dom  # every fetch is refused, and logged if tried
    assert rendered.refused_requests() == []
    traces = rendered.traces_per_chart()
    # the demo's two organisations, each with every chart
    expected = [f"{chart.key}-{org}" for chart in CHARTS for org in ("acme", "globex")]
    assert sorted(traces) == sorted(expected)
    assert all(count >= 1 for count in traces.values()), traces
    assert "When each source was last loaded" in rendered.dom
    for source in ("Keeper RMD", "Trend Micro Cloud One", "1Password Events"):
        assert f"<td>{source}</td>" in rendered.dom


def test_every_day_a_table_lists_has_a_value_its_chart_draws(demo_run):
    page = (demo_run.location.data_dir / "report.html").read_text()
    days = 0
    for chart in CHARTS:
        sections = re.findall(rf'data-chart="{chart.key}">(.*?)</section>', page, re.S)
        assert sections, chart.key
        for section in sections:
            head = re.findall(r"<th>(.*?)</th>", section)
            drawn = [head.index(column) for column in chart.values]
            for row in re.findall(r"<tr>(<td>.*?)</tr>", section):
                cells = re.findall(r"<td>(.*?)</td>", row)
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", cells[0]):  # a row per day
                    days += 1
                    assert any(cells[i] for i in drawn), (chart.key, cells)
    assert days


def test_the_browser_check_sees_a_page_that_fetches_or_does_not_draw(demo_run, tmp_path):
    page = (demo_run.location.data_dir / "report.html").read_text()
    fetching = tmp_path / "fetching.html"
    fetching.write_text(page.replace("<body>", '<body><img src="http://example.invalid/x.png">'))
    assert open_in_chromium(fetching, tmp_path / "p1").refused_requests()

    plotly_js = re.search(r"<script>(.*?)</script>", page, re.S)
    assert plotly_js is not None
    without_plotly = tmp_path / "without-plotly.html"
    without_plotly.write_text(page.replace(plotly_js.group(0), "", 1))
    traces = open_in_chromium(without_plotly, tmp_path / "p2").traces_per_chart()
    assert traces and not any(traces.values())


def test_report_for_one_organisation_and_period(demo_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSTURE_DATA_DIR", str(demo_run.location.data_dir))
    with duckdb.connect(str(demo_run.location.published_db), read_only=True) as con:
        (last,) = con.execute(
            "select max(metric_date) from marts.fct_daily_posture where source = 'keeper'"
        ).fetchone()
    out = tmp_path / "one-day.html"
    args = ["report", "--org", "acme", "--from", f"{last}", "--to", f"{last}", "--out", str(out)]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text()
    assert f"Security posture {last} to {last}" in page
    coverage = page[page.index('data-chart="login_coverage"') :]
    coverage = coverage[: coverage.index("</section>")]
    assert re.findall(r"<td>(\d{4}-\d{2}-\d{2})</td>", coverage) == [f"{last}"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["report", "--org", "initech"], "no organisation 'initech' in the warehouse"),
        (["report", "--from", "2026-02-01", "--to", "2026-01-01"], "is after --to"),
    ],
)
def test_report_refuses_bad_scope_in_one_line(demo_run, monkeypatch, capsys, args, expected):
    monkeypatch.setenv("POSTURE_DATA_DIR", str(demo_run.location.data_dir))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err


def test_report_refuses_a_date_that_is_not_one(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--from", "2026-02-30"])
    assert exit_.value.code == 2
    assert "'2026-02-30' is not a date like 2026-01-31" in capsys.readouterr().err
