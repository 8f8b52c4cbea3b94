"""Developer entry point, standard library only, so it runs on a machine with just Python 3.11.

    python3 dev.py demo    # set up .venv (first time) and run `posture demo`
    python3 dev.py test    # set up .venv (first time), ruff, then the whole test suite (all cores)
    python3 dev.py check   # ruff only
    python3 dev.py ui      # Dagster's web UI on http://127.0.0.1:3000 for this warehouse
    python3 dev.py bench   # the benchmark scripts in bench/

Every install takes the exact versions in constraints.txt.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".posture-installed"
QUIET_ENV = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DAGSTER_HOME": str(ROOT / "data" / "dagster"),
}
# The local Dagster instance: no telemetry, and one step at a time in the warehouse's writer pool
# across runs (see `assets/schedules.py`).
DAGSTER_YAML = "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n"


# The file a background apt-get writes its exit code to: tests that need its packages wait for it.
SYSTEM_PACKAGES_ENV = "POSTURE_SYSTEM_PACKAGES_DONE"
# Debian packages the tests need, each with the program (or a file, as a glob: PostgreSQL's
# server programs are not on PATH) that shows it is installed.
SYSTEM_PACKAGES = {
    "chromium": "chromium",
    "postgresql": "/usr/lib/postgresql/*/bin/initdb",  # the DuckLake engine's catalog server
}


def ensure_system_packages() -> Path | None:
    """Start installing with apt-get (as root), in the background, the Debian packages the tests
    need whose program is absent; returns the file apt-get's exit code is written to when it has
    finished, which the tests that need a package wait for (None: nothing to install)."""
    missing = [
        name
        for name, probe in SYSTEM_PACKAGES.items()
        if not (shutil.which(probe) or glob.glob(probe))
    ]
    if not missing or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    folder = Path(tempfile.mkdtemp(prefix="posture-apt-"))
    log, done = folder / "apt-get.log", folder / "exit-code"
    print(f"installing {', '.join(missing)} (apt-get, in the background: {log}) ...", flush=True)

    def install_packages() -> None:
        code = 1
        try:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            with log.open("w") as out:
                for command in (
                    ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                ):
                    code = subprocess.call(
                        command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
                    )
                    if code:
                        print(
                            f"{' '.join(command[:2])} failed ({log}): "
                            f"install {', '.join(missing)} by hand",
                            file=sys.stderr,
                            flush=True,
                        )
                        break
        finally:
            written = done.with_suffix(".partial")
            written.write_text(str(code))
            written.replace(done)  # whole, or not there

    # Not a daemon: dev.py ends only once apt-get has, never in the middle of an install.
    threading.Thread(target=install_packages, name="apt-get").start()
    return done


def _requirements_hash() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def install() -> None:
    """Create .venv and install the project with its pinned dependencies (once per change)."""
    wanted = _requirements_hash()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    print("installing pinned dependencies ...", flush=True)
    # pip brings in uv alone, and uv installs the rest: the same pinned set, many times faster.
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    _run([*pip, "-c", "constraints.txt", "uv"])
    # Compiled once here, as pip does: otherwise every test process compiles what it imports
    # again wherever Python may not write bytecode (PYTHONDONTWRITEBYTECODE).
    uv = [str(BIN / "uv"), "pip", "install", "--python", str(BIN / "python"), "-q"]
    uv += ["--compile-bytecode"]
    _run([*uv, "-c", "constraints.txt", "-e", ".[dev]"])
    STAMP.write_text(wanted)


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    merged = {**os.environ, **QUIET_ENV, **(env or {})}
    merged["PATH"] = os.pathsep.join([str(BIN), merged.get("PATH", "")])
    code = subprocess.call(command, cwd=ROOT, env=merged)
    if code:
        sys.exit(code)


def main(argv: list[str]) -> None:
    """Dispatch one verb; extra arguments go to the tool behind it."""
    verb, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if verb not in {"install", "demo", "test", "check", "ui", "bench"}:
        print(__doc__)
        sys.exit(0 if verb == "help" else 2)
    # Debian's packages download and unpack while the Python ones install and the tests start.
    system_packages = ensure_system_packages() if verb == "test" else None
    install()
    Path(QUIET_ENV["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    dagster_yaml = Path(QUIET_ENV["DAGSTER_HOME"]) / "dagster.yaml"
    if not dagster_yaml.exists():
        dagster_yaml.write_text(DAGSTER_YAML)
    if verb == "demo":
        _run([str(BIN / "posture"), "demo", *rest])
    elif verb == "check":
        _run([str(BIN / "ruff"), "check", "."])
        _run([str(BIN / "ruff"), "format", "--check", "."])
    elif verb == "test":
        _run([str(BIN / "ruff"), "check", "."])
        # One test process more than the cores, as tests also wait (on servers, subprocesses and
        # sleeps); tests sharing a fixture stay in one process (tests/conftest.py).
        workers = str((os.cpu_count() or 1) + 1)
        waits = {SYSTEM_PACKAGES_ENV: str(system_packages)} if system_packages else {}
        _run(
            [str(BIN / "python"), "-m", "pytest", "-n", workers, "--dist", "loadgroup", *rest],
            waits,
        )
    elif verb == "ui":
        _run([str(BIN / "dagster-webserver"), "-w", "workspace.yaml", *rest])
    elif verb == "bench":
        for script in sorted((ROOT / "bench").glob("bench_*.py")):
            _run([str(BIN / "python"), str(script), *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
