"""The shared vendor client against misbehaving vendors, over real HTTP: every request bounded,
every run within its deadline, every failure one line naming vendor, endpoint and cause, and no
credential in any of it."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from cli.errors import describe
from pipelines.registry import load
from simulators.server import SimulatorServer
from tests.conftest import files_containing
from warehouse.location import WarehouseLocation

KEEPER_STAT = "/api/rest/rmd/get_enterprise_stat"


def failed_load(name: str, location: WarehouseLocation, within: float) -> tuple[str, float]:
    """Run `load(name)` in a thread; the one-line message it failed with and the seconds it
    took. Fails the test if it has not ended after `within` seconds."""
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            load(name, location)
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    seconds = time.monotonic() - started
    assert not thread.is_alive(), f"the {name} load was still running after {within} s"
    assert "error" in outcome, f"the {name} load succeeded against a faulty vendor"
    message, code = describe(outcome["error"])
    assert code != 0 and "\n" not in message
    return message, seconds


def test_a_vendor_that_never_answers_ends_at_the_load_deadline(
    keeper_env: SimulatorServer, location, monkeypatch
):
    monkeypatch.setenv("POSTURE_LOAD_DEADLINE", "3")
    keeper_env.simulator.faults.update(hang_next=100)
    message, seconds = failed_load("keeper", location, within=30)
    assert message.startswith("Keeper RMD: /api/rest/rmd/"), message
    assert "load deadline of 3 s (POSTURE_LOAD_DEADLINE)" in message
    assert "read timeout" in message
    assert seconds < 10


SOURCES = [
    ("keeper", "keeper_env", "keeper_token", KEEPER_STAT),
    ("trend", "trend_env", "trend_key", "/api/logs"),
    ("onepassword", "onepassword_env", "onepassword_token", "/api/v2/auth/introspect"),
]


@pytest.mark.parametrize(("source", "fixture", "secret", "endpoint"), SOURCES)
def test_a_vendor_that_trickles_is_cut_off_by_the_read_timeout(
    source, fixture, secret, endpoint, location, monkeypatch, request
):
    server: SimulatorServer = request.getfixturevalue(fixture)
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    server.simulator.faults.update(trickle_next=2, trickle_seconds=0.3)
    message, seconds = failed_load(source, location, within=30)
    assert f": {endpoint} sent no complete response within 1 s" in message, message
    assert seconds < 10


def test_a_trickle_once_is_retried_and_loads(keeper_env: SimulatorServer, location, monkeypatch):
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")
    keeper_env.simulator.faults.update(trickle_next=1, trickle_seconds=0.3)
    load("keeper", location)


def test_a_long_retry_after_does_not_outlast_the_deadline(
    keeper_env: SimulatorServer, location, monkeypatch
):
    # Retry waits are bounded by the deadline, not only by dlt's maximum retry delay.
    monkeypatch.setenv("POSTURE_LOAD_DEADLINE", "5")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "3600")
    keeper_env.simulator.faults.update(burst_429_next=100, retry_after_seconds=3600)
    message, seconds = failed_load("keeper", location, within=30)
    assert message.startswith(f"Keeper RMD: {KEEPER_STAT} not done within the load deadline")
    assert "last attempt: HTTP 429" in message
    assert seconds < 5


def test_a_rate_limit_wait_does_not_outlast_the_deadline(
    onepassword_env: SimulatorServer, location, monkeypatch
):
    # One request an hour: the second request's wait would end long past the deadline.
    monkeypatch.setenv("POSTURE_LOAD_DEADLINE", "3")
    monkeypatch.setenv("SOURCES__ONEPASSWORD_EVENTS__RATE_LIMITS", "[[1, 3600]]")
    message, seconds = failed_load("onepassword", location, within=15)
    assert message.startswith("1Password Events: /api/v2/"), message
    assert "not done within the load deadline of 3 s (POSTURE_LOAD_DEADLINE)" in message
    assert "rate limit" in message
    assert seconds < 3


def test_a_bad_deadline_setting_is_named(keeper_env: SimulatorServer, location, monkeypatch):
    monkeypatch.setenv("POSTURE_LOAD_DEADLINE", "soon")
    message, _ = failed_load("keeper", location, within=30)
    assert "POSTURE_LOAD_DEADLINE" in message and "'soon'" in message


@pytest.mark.parametrize(("source", "fixture", "secret", "endpoint"), SOURCES)
def test_a_token_echoed_in_the_reason_phrase_is_redacted(
    source, fixture, secret, endpoint, location, request, capsys, caplog
):
    server: SimulatorServer = request.getfixturevalue(fixture)
    token: str = request.getfixturevalue(secret)
    server.simulator.faults.update(token_in_reason=True)
    message, _ = failed_load(source, location, within=60)
    assert f": {endpoint} answered HTTP 401 Unauthorized (" in message, message
    assert "[redacted])" in message and "vendor says: rejected" in message
    captured = capsys.readouterr()
    for text in (message, captured.out, captured.err, caplog.text):
        assert token not in text
    assert files_containing(location.data_dir, token) == []


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("base_url", "cause"),
    [
        # The port is picked when the test runs: every test process collects the same tests.
        ("http://127.0.0.1:{closed_port}", "refused the connection"),
        (
            "http://no-such-host.invalid",
            "could not be reached: host name no-such-host.invalid does not resolve",
        ),
    ],
)
def test_an_unreachable_vendor_is_one_line_naming_vendor_endpoint_and_cause(
    keeper_env: SimulatorServer, location, monkeypatch, base_url, cause
):
    monkeypatch.setenv("SOURCES__KEEPER_RMD__BASE_URL", base_url.format(closed_port=closed_port()))
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    message, seconds = failed_load("keeper", location, within=30)
    assert message.startswith(f"Keeper RMD: {KEEPER_STAT} {cause}"), message
    assert seconds < 10


def test_a_base_url_that_is_not_http_is_named(keeper_env: SimulatorServer, location, monkeypatch):
    monkeypatch.setenv("SOURCES__KEEPER_RMD__BASE_URL", keeper_env.url.replace("http", "httpz"))
    message, _ = failed_load("keeper", location, within=30)
    assert message.startswith("Keeper RMD: base URL 'httpz://127.0.0.1:"), message
    assert "is not an http(s) URL" in message
