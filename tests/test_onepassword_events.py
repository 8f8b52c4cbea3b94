"""The 1Password Events dlt source against the simulator over real HTTP, into a real DuckDB file."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pipelines.onepassword_events.client import SlidingWindowLimiter
from pipelines.onepassword_events.settings import FIELDS
from pipelines.registry import load
from pipelines.vendor_http import (
    MalformedResponseError,
    VendorError,
    VendorHTTPError,
    find_vendor_error,
)
from simulators.onepassword_events import EXTRA_FIELD, FEATURES, OnePasswordEventsSimulator
from simulators.server import SimulatorServer
from tests.conftest import files_containing, query
from warehouse.location import WarehouseLocation

ROOT = Path(__file__).resolve().parent.parent
TABLES = {
    "signin_attempts": "signinattempts",
    "item_usages": "itemusages",
    "audit_events": "auditevents",
}
ACCOUNT = "OPTESTACCOUNT0000000000000"


@pytest.fixture
def token() -> str:
    """A fake, random token (all features), so a grep for it means something."""
    return f"op-test-{secrets.token_hex(12)}"


@pytest.fixture
def scoped_token() -> str:
    """A fake token without the `itemusages` feature."""
    return f"op-scoped-{secrets.token_hex(12)}"


@pytest.fixture
def sim(token: str, scoped_token: str) -> OnePasswordEventsSimulator:
    """A small account: three days of history, a few hundred events a day."""
    return OnePasswordEventsSimulator(
        account_uuid=ACCOUNT,
        seed=5,
        tokens={token: FEATURES, scoped_token: ("signinattempts", "auditevents")},
        users=20,
        events_per_day={"signinattempts": 200, "itemusages": 400, "auditevents": 60},
        history_days=3,
    )


@pytest.fixture
def server(
    sim: OnePasswordEventsSimulator, token: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimulatorServer]:
    """The simulator on an ephemeral port; the source configured through the environment."""
    with SimulatorServer(sim) as running:
        monkeypatch.setenv("SOURCES__ONEPASSWORD_EVENTS__BASE_URL", running.url)
        monkeypatch.setenv("SOURCES__ONEPASSWORD_EVENTS__TOKEN", token)
        monkeypatch.setenv("SOURCES__ONEPASSWORD_EVENTS__PAGE_LIMIT", "100")
        yield running


def stored(location: WarehouseLocation, table: str) -> list[str]:
    """Every stored uuid of `table` (repeats included)."""
    return [uuid for (uuid,) in query(location, f"select uuid from onepassword_events.{table}")]


def every_table(location: WarehouseLocation) -> dict[str, list[str]]:
    """Each table's stored uuids, sorted: equal before and after a run that changed nothing."""
    return {table: sorted(stored(location, table)) for table in TABLES}


def assert_exactly_the_visible_events(location: WarehouseLocation, sim) -> None:
    """Each table holds every event the vendor shows now, each exactly once."""
    for table, feature in TABLES.items():
        uuids = stored(location, table)
        assert len(uuids) == len(set(uuids)), f"{table} holds an event twice"
        assert set(uuids) == set(sim.visible_uuids(feature)), table


def test_a_backfill_loads_in_several_runs_each_continuing_the_cursor(server, location):
    sim = server.simulator
    # At most about 250 events a run, the three types together: each type stops after the page
    # (100 events) at which the run's events reach 250, so a type passes on at most 300.
    infos = load("onepassword", location, max_events=250)
    assert_exactly_the_visible_events(location, sim)
    rows = " union all ".join(
        f"select _dlt_load_id from onepassword_events.{table}" for table in TABLES
    )
    per_run = query(
        location, f"select count(*) from ({rows}) group by _dlt_load_id order by _dlt_load_id"
    )
    sizes = [n for (n,) in per_run]
    assert len(sizes) == len(infos) >= 3
    assert all(250 <= n <= 3 * 300 for n in sizes[:-1]) and sizes[-1] <= 3 * 300
    assert len(load("onepassword", location, max_events=250)) == 1  # nothing new: one run
    # The loaded runs leave no copy of their rows behind in the pipelines folder.
    loaded_files = [p.name for p in location.pipelines_dir.rglob("completed_jobs/*")]
    assert not loaded_files, loaded_files


def test_first_run_loads_every_event_and_a_second_run_adds_nothing(server, location):
    sim = server.simulator
    load("onepassword", location)
    assert_exactly_the_visible_events(location, sim)
    tenants = query(location, "select distinct tenant from onepassword_events.signin_attempts")
    assert tenants == [(ACCOUNT,)]
    (row,) = query(
        location,
        "select target_user_email, client_ip_address, location_country, category, event_date,"
        " raw from onepassword_events.signin_attempts order by timestamp limit 1",
    )
    assert all(value is not None for value in row[:5])
    assert row[5].startswith("{") and '"target_user"' in row[5]
    (audit,) = query(
        location,
        "select count(*) from onepassword_events.audit_events"
        " where actor_email is null or object_type is null or session_uuid is null",
    )
    assert audit == (0,)
    before = query(
        location, "select count(*), max(_dlt_load_id) from onepassword_events.item_usages"
    )

    load("onepassword", location)  # nothing new at the vendor

    assert (
        query(location, "select count(*), max(_dlt_load_id) from onepassword_events.item_usages")
        == before
    )
    assert_exactly_the_visible_events(location, sim)


def test_a_stored_cursor_the_vendor_refuses_starts_that_type_again(
    server, location, monkeypatch: pytest.MonkeyPatch, caplog
):
    sim = server.simulator
    load("onepassword", location)
    sim.advance(hours=6)
    decode = sim._decode_cursor
    refused: list[str] = []

    def expired(feature, cursor):
        if feature == "itemusages" and not refused:  # the first cursor it is shown
            refused.append(cursor)
            raise ValueError("invalid cursor")
        return decode(feature, cursor)

    monkeypatch.setattr(sim, "_decode_cursor", expired)
    with caplog.at_level(logging.WARNING):
        load("onepassword", location)
    assert refused and "refused the stored cursor (HTTP 400); reading again from" in caplog.text
    assert_exactly_the_visible_events(location, sim)


def test_a_late_event_is_loaded_by_the_next_run(server, location):
    sim = server.simulator
    late = sim.add_event(
        "signinattempts",
        timestamp=sim.now - timedelta(minutes=10),
        visible_after=timedelta(minutes=20),
        category="mfa_failed",
    )
    load("onepassword", location)
    assert late not in stored(location, "signin_attempts")
    ((newest,),) = query(location, "select max(timestamp) from onepassword_events.signin_attempts")

    seen_before = {table: set(stored(location, table)) for table in TABLES}
    sim.advance(hours=1)
    load("onepassword", location)

    # The second run continued from its cursors: it loaded only what became visible since.
    for table, feature in TABLES.items():
        ((last_load,),) = query(
            location, f"select max(_dlt_load_id) from onepassword_events.{table}"
        )
        fresh = query(
            location,
            f"select uuid from onepassword_events.{table} where _dlt_load_id = '{last_load}'",
        )
        assert {uuid for (uuid,) in fresh} == set(sim.visible_uuids(feature)) - seen_before[table]
    ((stamp, category),) = query(
        location,
        f"select timestamp, category from onepassword_events.signin_attempts where uuid = '{late}'",
    )
    # Older than events the first run already had: a client polling "since the newest
    # timestamp I have" would never ask for it.
    assert stamp < newest and category == "mfa_failed"
    assert_exactly_the_visible_events(location, sim)


def test_a_token_without_itemusages_loads_the_other_two_and_says_so(
    server, location, scoped_token, monkeypatch, caplog
):
    monkeypatch.setenv("SOURCES__ONEPASSWORD_EVENTS__TOKEN", scoped_token)
    with caplog.at_level(logging.WARNING, logger="pipelines.onepassword_events"):
        load("onepassword", location)
    skipped = [r.getMessage() for r in caplog.records if "item_usages" in r.getMessage()]
    assert len(skipped) == 1 and "itemusages" in skipped[0] and "1Password" in skipped[0]
    sim = server.simulator
    for table in ("signin_attempts", "audit_events"):
        assert set(stored(location, table)) == set(sim.visible_uuids(TABLES[table]))
    # The table exists, empty, with its columns: models built on it keep working.
    assert stored(location, "item_usages") == []
    columns = {
        name
        for (name,) in query(
            location,
            "select column_name from information_schema.columns"
            " where table_schema = 'onepassword_events' and table_name = 'item_usages'",
        )
    }
    assert {"uuid", "vault_uuid", "action", "user_email", "event_date", "raw"} <= columns


def test_a_run_killed_in_the_middle_and_run_again_leaves_every_event_once(server, location):
    sim = server.simulator
    load("onepassword", location)
    sim.advance(days=1)
    sim.faults.update(slow_seconds=0.15)
    code = (
        "from pipelines.registry import load\n"
        "from warehouse.location import WarehouseLocation\n"
        "from pathlib import Path\n"
        f"load('onepassword', WarehouseLocation(Path({str(location.data_dir)!r})), page_limit=10)\n"
    )
    served = sim.requests_served
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ))
    deadline = time.monotonic() + 60
    while sim.requests_served < served + 8 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, "the run finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    sim.faults.update(slow_seconds=0)

    load("onepassword", location)

    assert_exactly_the_visible_events(location, sim)


def test_429_is_waited_out(server, location):
    sim = server.simulator
    sim.faults.update(burst_429_next=3, retry_after_seconds=0)
    load("onepassword", location)
    assert sim.faults.burst_429_next == 0
    assert_exactly_the_visible_events(location, sim)


def test_the_client_stays_within_a_lowered_rate_limit(server, location, tmp_path, monkeypatch):
    sim = server.simulator
    sim.rate_limits = ((5, 0.5),)
    load("onepassword", location, rate_limits=[(5, 0.5)])
    assert sim.rate_limited == 0 and sim.requests_served > 10
    assert_exactly_the_visible_events(location, sim)
    # Control: a client that ignores the limit does meet 429s, and waits them out as the
    # vendor's `Retry-After` says (the tests' short retry delays could give up before the
    # window frees on a busy machine).
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    load("onepassword", WarehouseLocation(tmp_path / "other").ensure(), rate_limits=[(1000, 0.5)])
    assert sim.rate_limited > 0


def test_the_runs_of_a_backfill_share_one_rate_limit(server, location):
    sim = server.simulator
    sim.rate_limits = ((12, 2.0),)
    infos = load("onepassword", location, rate_limits=[(12, 2.0)], max_events=100)
    assert len(infos) >= 4 and sim.requests_served > 25
    assert sim.rate_limited == 0  # no run started a fresh count against the vendor's window
    assert_exactly_the_visible_events(location, sim)


def test_the_limiter_waits_for_the_oldest_request_to_leave_the_window():
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = SlidingWindowLimiter([(3, 10.0), (5, 60.0)], clock=lambda: now[0], sleep=sleep)

    def request() -> None:  # answered at once
        limiter.done(limiter.acquire())

    for _ in range(3):
        request()
    assert waits == []
    request()  # the 4th within 10 s waits for the 1st to be 10 s old
    assert waits == [pytest.approx(10.0 + limiter.MARGIN)]
    request()
    request()  # the 6th within 60 s waits for the 1st to be 60 s old
    assert now[0] == pytest.approx(160.0 + limiter.MARGIN)


def test_the_limiter_counts_a_window_from_the_answer_of_a_slow_request():
    now = [100.0]
    limiter = SlidingWindowLimiter([(1, 10.0)], clock=lambda: now[0], sleep=_advance(now))
    slow = limiter.acquire()
    now[0] += 4.0  # the vendor may have seen it only just before answering
    limiter.done(slow)
    limiter.done(limiter.acquire())  # the next waits 10 s from the answer, not from the send
    assert now[0] == pytest.approx(114.0 + limiter.MARGIN)


def _advance(now: list[float]):
    def sleep(seconds: float) -> None:
        now[0] += seconds

    return sleep


def test_a_revoked_token_fails_clearly_without_showing_the_token(server, location, token, caplog):
    sim = server.simulator
    load("onepassword", location)
    before = every_table(location)
    sim.revoke(token)
    sim.advance(hours=2)

    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as failed:
        load("onepassword", location)

    error = find_vendor_error(failed.value)
    assert isinstance(error, VendorHTTPError)
    assert "1Password" in str(error) and "401" in str(error) and "auth/introspect" in str(error)
    assert "SOURCES__ONEPASSWORD_EVENTS__TOKEN" in str(error)
    shown = "".join(traceback.format_exception(failed.value)) + caplog.text
    assert token not in shown
    assert files_containing(location.data_dir, token) == []
    assert every_table(location) == before


def test_malformed_json_mid_run_fails_naming_the_endpoint_and_changes_nothing(server, location):
    sim = server.simulator
    load("onepassword", location)
    before = every_table(location)
    sim.advance(hours=12)
    sim.faults.update(malformed_next=1, path_contains="/api/v2/itemusages")

    with pytest.raises(Exception) as failed:
        load("onepassword", location)

    error = find_vendor_error(failed.value)
    assert isinstance(error, MalformedResponseError)
    assert "1Password" in str(error) and "/api/v2/itemusages" in str(error)
    assert every_table(location) == before
    load("onepassword", location)  # the next run picks up from the last good cursor
    assert_exactly_the_visible_events(location, sim)


DUCKDB_TYPES = {
    "text": "varchar",
    "bigint": "bigint",
    "double": "double",
    "timestamp": "timestamptz",
}


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "indented"])
def test_every_column_holds_its_value_from_the_item(server, location, pretty):
    # A vendor may indent its JSON (an item then spans several lines): the same columns load.
    sim = server.simulator
    sim.faults.update(pretty_json=pretty)
    load("onepassword", location)
    assert_exactly_the_visible_events(location, sim)
    for table, fields in FIELDS.items():
        differ = " or ".join(
            f"{column} is distinct from try_cast(raw->>'$.{path}' as {DUCKDB_TYPES[kind]})"
            for column, path, kind in fields
        )
        ((raw, mismatched),) = query(
            location,
            f"select any_value(raw), count(*) filter ({differ}) from onepassword_events.{table}",
        )
        assert mismatched == 0, table
        assert ("\n" in raw) == pretty  # `raw` is the item's text as the vendor sent it


def test_an_item_that_is_not_an_object_fails_naming_the_endpoint(server, location, monkeypatch):
    sim = server.simulator
    load("onepassword", location)
    before = every_table(location)
    sim.advance(hours=12)
    render = sim._render
    monkeypatch.setattr(
        sim,
        "_render",
        lambda feature, event: 5 if feature == "auditevents" else render(feature, event),
    )

    with pytest.raises(Exception) as failed:
        load("onepassword", location)

    error = find_vendor_error(failed.value)
    assert isinstance(error, MalformedResponseError)
    assert "/api/v2/auditevents" in str(error) and "not a list of objects" in str(error)
    assert every_table(location) == before


def test_an_unknown_field_becomes_a_column(server, location):
    sim = server.simulator
    sim.faults.update(extra_field=True)
    load("onepassword", location)
    for table in TABLES:
        rows = query(location, f"select {EXTRA_FIELD}, raw from onepassword_events.{table}")
        assert rows and all(value is not None and EXTRA_FIELD in raw for value, raw in rows)


def test_an_unknown_field_that_changes_type_still_loads(server, location, monkeypatch):
    # A number in the first run; in the next, a word or a fraction, varying between events.
    sim = server.simulator
    render = sim._render
    risk = {"value": lambda event: 1}
    monkeypatch.setattr(
        sim,
        "_render",
        lambda feature, event: {**render(feature, event), "risk": risk["value"](event)},
    )
    load("onepassword", location)
    sim.advance(hours=12)
    risk["value"] = lambda event: "high" if event.ts_us % 2 else 2.5
    load("onepassword", location)
    assert_exactly_the_visible_events(location, sim)
    values = {
        row[0]
        for row in query(location, "select distinct risk from onepassword_events.signin_attempts")
    }
    assert values == {"1", "high", "2.5"}


def test_values_of_unexpected_types_are_coerced_and_kept_in_raw(server, location):
    sim = server.simulator
    odd = sim.add_event(
        "itemusages", used_version="7", location="unknown", risk={"score": 3, "why": ["ip"]}
    )
    load("onepassword", location)
    ((version, city, risk, raw),) = query(
        location,
        "select used_version, location_city, risk, raw from onepassword_events.item_usages"
        f" where uuid = '{odd}'",
    )
    assert version == 7 and city is None
    assert risk == '{"score":3,"why":["ip"]}'  # a nested unknown key becomes JSON text
    assert '"location":"unknown"' in raw
    assert_exactly_the_visible_events(location, sim)


def test_absent_optional_fields_load_as_nulls(server, location):
    sim = server.simulator
    sim.faults.update(drop_optional=True)
    load("onepassword", location)
    assert_exactly_the_visible_events(location, sim)
    ((missing,),) = query(
        location, "select count(*) from onepassword_events.audit_events where aux_uuid is not null"
    )
    assert missing == 0


def test_a_page_repeating_events_already_read_is_asked_for_again(server, location, caplog):
    # A stale cache in front of the vendor serves the previous page's items under the next
    # page's cursor: taking it would skip the page that cursor stands for.
    sim = server.simulator
    sim.faults.update(repeat_page_next=1, path_contains="/api/v2/signinattempts")
    with caplog.at_level(logging.WARNING):
        load("onepassword", location)
    assert sim.faults.repeat_page_next == 0
    assert_exactly_the_visible_events(location, sim)
    assert "/api/v2/signinattempts" in caplog.text and "already read" in caplog.text


def test_a_vendor_that_keeps_repeating_a_page_fails_naming_the_endpoint(server, location):
    sim = server.simulator
    sim.faults.update(repeat_page_next=1000, path_contains="/api/v2/itemusages")

    with pytest.raises(Exception) as failed:
        load("onepassword", location)

    error = find_vendor_error(failed.value)
    assert isinstance(error, VendorError), failed.value
    assert "1Password" in str(error) and "/api/v2/itemusages" in str(error)
    assert "already read" in str(error) and "\n" not in str(error)
    assert sim.faults.repeat_page_next > 990  # a few retries, not a loop
    sim.faults.update(repeat_page_next=0)
    load("onepassword", location)
    assert_exactly_the_visible_events(location, sim)


def test_an_endless_run_of_empty_pages_fails_naming_the_endpoint(server, location):
    sim = server.simulator
    sim.rate_limits = ()
    sim.faults.update(empty_pages_next=3000, path_contains="/api/v2/auditevents")

    with pytest.raises(Exception) as failed:
        load("onepassword", location, rate_limits=[(100_000, 1.0)])

    error = find_vendor_error(failed.value)
    assert isinstance(error, VendorError), failed.value
    assert "1Password" in str(error) and "/api/v2/auditevents" in str(error)
    assert "empty pages" in str(error) and "\n" not in str(error)
    assert sim.faults.empty_pages_next > 2000  # bounded well before the vendor's run ends


def test_a_number_too_big_for_bigint_is_kept_in_raw(server, location):
    sim = server.simulator
    huge = 10**30
    odd = sim.add_event("auditevents", aux_id=huge)
    load("onepassword", location)
    ((aux_id, raw),) = query(
        location, f"select aux_id, raw from onepassword_events.audit_events where uuid = '{odd}'"
    )
    assert aux_id is None and f'"aux_id":{huge}' in raw
    assert_exactly_the_visible_events(location, sim)


def test_the_token_is_checked_once_for_the_three_event_types(server, location, token):
    sim = server.simulator
    sim.revoke(token)
    with pytest.raises(Exception) as failed:
        load("onepassword", location)
    assert isinstance(find_vendor_error(failed.value), VendorHTTPError)
    assert sim.requests_served == 1


def test_a_closed_port_fails_in_one_line_naming_the_token_check(location, token, tmp_path):
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "SOURCES__ONEPASSWORD_EVENTS__BASE_URL": f"http://127.0.0.1:{port}",
        "SOURCES__ONEPASSWORD_EVENTS__TOKEN": token,
        "RUNTIME__REQUEST_MAX_ATTEMPTS": "2",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "--data-dir",
            str(location.data_dir),
            "load",
            "onepassword",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1, out.stderr
    cause = "1Password Events: /api/v2/auth/introspect refused the connection"
    assert cause in lines[0], lines[0]
    assert token not in out.stderr + out.stdout


def test_a_lost_pipelines_folder_continues_from_the_cursors_the_warehouse_keeps(server, location):
    # dlt keeps each run's state in the warehouse too: a machine whose pipelines folder is gone
    # (a new host, a restored warehouse, another machine loading a shared lake) goes on from there.
    import shutil

    load("onepassword", location)
    before = query(
        location, "select count(*), max(_dlt_load_id) from onepassword_events.item_usages"
    )
    shutil.rmtree(location.pipelines_dir)
    load("onepassword", location)  # nothing new at the vendor
    assert (
        query(location, "select count(*), max(_dlt_load_id) from onepassword_events.item_usages")
        == before
    )
