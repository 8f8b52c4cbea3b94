"""What every vendor simulator shares: a simulated clock, fault switches and a loopback HTTP server.

A simulator is a subclass of `VendorSimulator` that answers `handle(request)`; `SimulatorServer`
serves it on 127.0.0.1 (an ephemeral port by default) in a background thread. Each response carries
a `Date` header from the simulated clock, so a source sees the vendor's time, not the machine's.

Control endpoints (no auth, loopback only), used by `posture simulate` and by tests:
- `POST /_sim/advance` `{"days": 1, "hours": 0}`: move the clock forward; the simulator evolves.
- `POST /_sim/faults` `{...Faults fields...}`: switch faults on or off.
- `GET /_sim/state`: the clock and a few counters.
"""

from __future__ import annotations

import dataclasses
import json
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_START = datetime(2026, 1, 1, 9, 0, 0, tzinfo=UTC)


@dataclass
class Faults:
    """Fault switches. Counters (`*_next`) apply to the next N matching requests, then reset."""

    error_rate: float = 0.0  # share of requests answered 500
    burst_429_next: int = 0  # the next N requests are answered 429 with Retry-After
    retry_after_seconds: int = 1  # Retry-After sent with 429, whole seconds as HTTP defines it
    malformed_next: int = 0  # the next N successful responses have a truncated JSON body
    path_contains: str = ""  # counters above only count requests whose path contains this
    slow_seconds: float = 0.0  # delay before every response
    extra_field: bool = False  # every record gains an unknown key
    drop_optional: bool = False  # optional record fields are left out
    pretty_json: bool = False  # JSON bodies are indented: a record spans several lines
    hang_next: int = 0  # the next N requests are read and never answered (connection held)
    trickle_next: int = 0  # the next N responses are sent a byte at a time...
    trickle_seconds: float = 2.0  # ...this far apart
    token_in_reason: bool = False  # every request is refused: 401 echoing its credential

    def update(self, **changes: Any) -> None:
        """Set the named switches; an unknown name raises ValueError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault switch(es): {', '.join(sorted(unknown))}")
        for key, value in changes.items():
            kind = type(getattr(self, key))
            if kind is bool and isinstance(value, str):
                value = value.strip().lower() in ("1", "true", "yes", "on")
            setattr(self, key, kind(value))


@dataclass
class Request:
    """One HTTP request as a simulator sees it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not)."""
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """What a simulator answers: a status, a JSON-able payload and extra headers."""

    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # the status line's reason phrase (default: the standard one)


class VendorSimulator:
    """Base class: a clock, faults and a deterministic random generator. Subclasses implement
    `handle` (answer one request) and `evolve` (advance the simulated world by one step)."""

    name = "vendor"
    step = timedelta(hours=1)  # granularity of `evolve`

    def __init__(self, *, seed: int = 7, start: datetime = DEFAULT_START) -> None:
        self.now = start
        self.rng = random.Random(seed)  # the world's randomness
        self.fault_rng = random.Random(seed)  # separate, so faults never change the world
        self.faults = Faults()
        self.lock = threading.RLock()
        self.requests_served = 0

    # -- to implement -------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def evolve(self, until: datetime) -> None:
        """Move the simulated world to `until` (a later time). Default: only the clock moves."""
        self.now = until

    # -- shared -------------------------------------------------------------------------------
    def advance(self, *, days: float = 0, hours: float = 0) -> datetime:
        """Advance the simulated clock (the world evolves on the way); returns the new time."""
        with self.lock:
            self.evolve(self.now + timedelta(days=days, hours=hours))
            return self.now

    def state(self) -> dict[str, Any]:
        """A small summary for `/_sim/state`."""
        return {"name": self.name, "now": self.now.isoformat(), "requests": self.requests_served}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall)
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _dispatch(self) -> None:
        sim = self.server.simulator
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        if parts.path.startswith("/_sim/"):
            response = _control(sim, request)
            self._send(response, malformed=False, now=sim.now)
            return
        faults = sim.faults
        if faults.slow_seconds:
            time.sleep(faults.slow_seconds)
        with sim.lock:
            sim.requests_served += 1
            counted = faults.path_contains in request.path
            hang = counted and faults.hang_next > 0
            if hang:
                faults.hang_next -= 1
            self.trickle = counted and faults.trickle_next > 0
            if self.trickle:
                faults.trickle_next -= 1
        if hang:
            self._hold_unanswered()
            return
        with sim.lock:
            if faults.token_in_reason:
                self._send(_token_echo(request), malformed=False, now=sim.now)
                return
            if counted and faults.burst_429_next > 0:
                faults.burst_429_next -= 1
                response = Response(
                    429,
                    {"status": 429, "message": "Too Many Requests"},
                    {"Retry-After": str(faults.retry_after_seconds)},
                )
                self._send(response, malformed=False, now=sim.now)
                return
            if faults.error_rate and sim.fault_rng.random() < faults.error_rate:
                response = Response(500, {"status": 500, "message": "Internal Server Error"})
                self._send(response, malformed=False, now=sim.now)
                return
            response = sim.handle(request)
            malformed = counted and faults.malformed_next > 0 and response.status == 200
            if malformed:
                faults.malformed_next -= 1
            self._send(response, malformed=malformed, now=sim.now)

    def _hold_unanswered(self) -> None:
        """Answer nothing until the client gives up (closes) or the server stops."""
        while not self.server.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                break
        self.close_connection = True

    def _send(self, response: Response, *, malformed: bool, now: datetime) -> None:
        if isinstance(response.payload, str):
            body = response.payload.encode()
            content_type = "text/plain; charset=utf-8"
        else:
            pretty = self.server.simulator.faults.pretty_json
            layout = {"indent": 2} if pretty else {"separators": (",", ":")}
            body = json.dumps(response.payload, **layout).encode()
            content_type = "application/json"
        if malformed:
            body = body[: max(1, len(body) // 2)]
        # Not send_response(): it adds a second Date header from the machine's clock.
        self.send_response_only(response.status, response.reason)
        self.send_header("Server", self.version_string())
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", format_datetime(now, usegmt=True))
        for key, value in response.headers.items():
            self.send_header(key, value)
        if getattr(self, "trickle", False):
            self.trickle = False
            self._trickle(b"".join(self._headers_buffer) + b"\r\n" + body)
            self._headers_buffer = []
            return
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, data: bytes) -> None:
        """Send `data` a byte every `trickle_seconds`, until done, the client leaves or the
        server stops."""
        pause = self.server.simulator.faults.trickle_seconds
        try:
            for index in range(len(data)):
                if self.server.stopping.wait(pause if index else 0):
                    break
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


def _token_echo(request: Request) -> Response:
    """A 401 whose reason phrase and message repeat the credential the request carried, as a
    careless vendor's error page might."""
    credential = " ".join(
        value for name, value in request.headers.items() if name in _CREDENTIAL_HEADERS
    )
    reason = f"Unauthorized ({credential})"
    return Response(401, {"status": 401, "message": f"rejected {credential}"}, reason=reason)


_CREDENTIAL_HEADERS = ("authorization", "x-api-token")


def _control(sim: VendorSimulator, request: Request) -> Response:
    try:
        if request.path == "/_sim/advance" and request.method == "POST":
            args = request.json() or {}
            now = sim.advance(days=float(args.get("days", 0)), hours=float(args.get("hours", 0)))
            return Response(200, {"now": now.isoformat()})
        if request.path == "/_sim/faults" and request.method == "POST":
            sim.faults.update(**(request.json() or {}))
            return Response(200, dataclasses.asdict(sim.faults))
        if request.path == "/_sim/state":
            return Response(200, sim.state())
    except (ValueError, TypeError) as exc:
        return Response(400, {"status": 400, "message": str(exc)})
    return Response(404, {"status": 404, "message": "Not Found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: VendorSimulator) -> None:
        self.simulator = simulator
        self.stopping = threading.Event()  # ends held and trickled responses
        super().__init__(address, _Handler)


class SimulatorServer:
    """Serve a simulator over real HTTP on loopback, in a background thread.

    >>> with SimulatorServer(KeeperRmdSimulator()) as server:
    ...     server.url  # 'http://127.0.0.1:<port>'
    """

    def __init__(self, simulator: VendorSimulator, *, host: str = "127.0.0.1", port: int = 0):
        self.simulator = simulator
        self._server = _Server((host, port), simulator)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sim-{simulator.name}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SimulatorServer:
        """Start serving in the background; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def utc_iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as the vendors write timestamps."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_bearer(request: Request, header: str, scheme: str, valid: set[str]) -> Response | None:
    """None when `header` is `<scheme> <token>` with a valid token, else a 401 Response."""
    value = request.headers.get(header.lower(), "")
    prefix = f"{scheme} "
    if value.startswith(prefix) and value[len(prefix) :] in valid:
        return None
    return Response(401, {"status": 401, "message": "Unauthorized"})
