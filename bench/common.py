"""Benchmark helpers: a simulator or pre-built pages served from their own process, peak memory
of a child (and of each of its dlt steps), a file's size on disk, medians, scratch folders."""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for benchmark children: the project importable (installed or not, also
    in the spawned simulator process), telemetry off, plus `extra`."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **extra,
    }


KEEP_ENV = "POSTURE_BENCH_KEEP"


def scratch_dir(prefix: str) -> Path:
    """A new temporary folder for a benchmark's warehouses, removed when the benchmark exits
    (a run of a million events leaves gigabytes) unless `POSTURE_BENCH_KEEP=1`."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.environ.get(KEEP_ENV) != "1":
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _serve(factory: Callable[[], Any], ready: Any, port: Any) -> None:
    from simulators.server import SimulatorServer

    server = SimulatorServer(factory()).start()
    port.value = int(server.url.rsplit(":", 1)[1])
    ready.set()
    while True:
        time.sleep(3600)


@contextmanager
def served_from_process(
    target: Callable[..., None], *args: Any, wait: float = 120
) -> Iterator[str]:
    """Run `target(*args, ready, port)` in a separate process (its CPU and memory are not the
    client's): it serves on loopback, then sets `port` and `ready`. Yields the base URL once it
    is ready. `target` and `args` must be picklable (module-level functions, shared values)."""
    ctx = multiprocessing.get_context("spawn")
    ready, port = ctx.Event(), ctx.Value("i", 0)
    process = ctx.Process(target=target, args=(*args, ready, port), daemon=True)
    process.start()
    try:
        if not ready.wait(wait):
            raise RuntimeError(f"{target.__name__} did not start")
        yield f"http://127.0.0.1:{port.value}"
    finally:
        process.kill()
        process.join()


@contextmanager
def simulator_process(factory: Callable[[], Any]) -> Iterator[str]:
    """Serve `factory()` (a vendor simulator) from a separate process; yields the base URL.
    `factory` must be picklable (a module-level function or partial)."""
    with served_from_process(_serve, factory) as url:
        yield url


class PrebuiltPages(Protocol):
    """A vendor API over pages rendered before anything is timed."""

    date: str  # the `Date` header of every answer (the vendor's clock when the pages were made)

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes]:
        """The status and JSON body for one request."""


def _serve_pages(
    build: Callable[[], PrebuiltPages], latency: float, served: Any, ready: Any, port: Any
) -> None:
    pages = build()  # rendered here, before the server says it is ready

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the clients use it
        disable_nagle_algorithm = True  # headers and body leave at once (no delayed-ACK stall)

        def answer(self) -> None:
            with served.get_lock():
                served.value += 1
            length = int(self.headers.get("Content-Length") or 0)
            request_body = self.rfile.read(length)
            time.sleep(latency)  # each request waits on its own: requests sent together overlap
            status, body = pages.answer(self.command, self.path, self.headers, request_body)
            self.send_response_only(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Date", pages.date)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port.value = server.server_address[1]
    ready.set()
    server.serve_forever()


@contextmanager
def prebuilt_pages_process(
    build: Callable[[], PrebuiltPages], latency: float = 0.0
) -> Iterator[tuple[str, Any]]:
    """Serve the pages `build()` renders (in a separate process, as ready bytes, so the server
    is not what is measured), each answer `latency` seconds after its request arrived (a distant
    vendor's round trip); yields the base URL once they are built, and the shared count of
    requests served. `build` must be picklable (a class or a partial of one)."""
    served = multiprocessing.get_context("spawn").Value("l", 0)
    with served_from_process(_serve_pages, build, latency, served, wait=1800) as url:
        yield url, served


def run_child(code: str, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run `code` in a fresh Python; returns (seconds, its own peak RSS in MB, stdout)."""
    probe = "\nimport resource as _r; print('__peak_kb__', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss)"
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code + probe], capture_output=True, text=True, env=env, check=False
    )
    seconds = time.perf_counter() - started
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    lines = out.stdout.splitlines()
    peak_kb = int(lines[-1].split()[1])
    return seconds, peak_kb / 1024, "\n".join(lines[:-1])


def posture_program(*args: str) -> str:
    """Code for `run_child` that runs the `posture` program with `args` as its console script
    does, failing unless it exits 0."""
    return (
        f"import sys\nfrom cli.main import run\nsys.argv = ['posture', *{list(args)!r}]\n"
        "try:\n    run()\nexcept SystemExit as exit_:\n    if exit_.code:\n        raise\n"
    )


STEPS_MARK = "__steps__"
SECONDS_MARK = "__step_seconds__"
_STEP_PEAKS = """
import json as _json, threading as _threading, time as _time
import dlt as _dlt
_step, _peaks, _seconds = ["other"], {}, {}
def _sample_rss():
    while True:
        with open("/proc/self/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        _peaks[_step[0]] = max(_peaks.get(_step[0], 0), rss / 1024)
        _time.sleep(0.02)
def _mark_step(name):
    method = getattr(_dlt.Pipeline, name)
    def run(self, *args, **kwargs):
        _step[0] = name
        started = _time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            _step[0] = "other"
            _seconds[name] = _seconds.get(name, 0) + _time.perf_counter() - started
    setattr(_dlt.Pipeline, name, run)
for _name in ("extract", "normalize", "load"):
    _mark_step(_name)
_threading.Thread(target=_sample_rss, daemon=True).start()
"""


def with_step_peaks(code: str) -> str:
    """`code` for `run_child` that also prints the peak RSS (MB, sampled every 20 ms) of each of
    dlt's steps (extract, normalize, load; `other` for imports, setup and what lies between),
    printed from its output by `print_step_peaks`, and the seconds spent in each step (all runs
    together), read from its output by `step_seconds`. Linux only (it reads /proc)."""
    return (
        f"{_STEP_PEAKS}\n{code}\nprint({STEPS_MARK!r}, _json.dumps(_peaks))\n"
        f"print({SECONDS_MARK!r}, _json.dumps(_seconds))\n"
    )


def step_seconds(output: str) -> dict[str, float]:
    """The seconds a `with_step_peaks` child spent in each of dlt's steps."""
    line = next(line for line in output.splitlines() if line.startswith(SECONDS_MARK))
    return json.loads(line.removeprefix(SECONDS_MARK))


def print_step_peaks(output: str) -> None:
    """Print, as a result line, the peaks a `with_step_peaks` child printed."""
    line = next(line for line in output.splitlines() if line.startswith(STEPS_MARK))
    peaks = json.loads(line.removeprefix(STEPS_MARK))
    row("  its peak in each step", "", ", ".join(f"{s} {mb:.0f} MB" for s, mb in peaks.items()))


def print_file_sizes(load_mb: float, baseline_mb: float) -> None:
    """Print, as a result line, the size of the warehouse file a load left beside the baseline's."""
    row(
        "  its warehouse file after the load",
        f"{load_mb:.0f} MB",
        "",
        f"baseline's {baseline_mb:.0f} MB",
    )


def file_mb(db: Path) -> float:
    """What a DuckDB file takes on disk, with its write-ahead log, in MB."""
    wal = db.with_name(db.name + ".wal")
    return sum(path.stat().st_size for path in (db, wal) if path.exists()) / 1e6


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of `repeat` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def row(label: str, value: str, target: str = "", baseline: str = "") -> None:
    """Print one aligned result line."""
    print(f"  {label:<44} {value:>12}   {target:<14} {baseline}", flush=True)
