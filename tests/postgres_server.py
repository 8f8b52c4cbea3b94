"""A real PostgreSQL server for the DuckLake tests: Debian's binaries, started on a free loopback
port in a temporary folder, with password authentication, and removed when stopped.

PostgreSQL refuses to run as root, so as root the server runs as the unprivileged `nobody`.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SERVER_USER = "nobody"  # only when the tests run as root
SUPERUSER = "posture"


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries folder (Debian's layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major_version)
    if not found:
        raise RuntimeError(
            "no PostgreSQL server is installed: `python3 dev.py test` installs Debian's "
            "`postgresql` package (or apt-get install postgresql)"
        )
    return Path(found[-1]).parent


def _major_version(initdb: str) -> int:
    return int(Path(initdb).parent.parent.name.split(".")[0])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster; `create_database` gives each test a database of its own."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.password = secrets.token_hex(16)
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.folder = Path(tempfile.mkdtemp(prefix="posture-postgres-"))
        self.data = self.folder / "data"
        self._user = SERVER_USER if os.geteuid() == 0 else None

    def start(self) -> PostgresServer:
        """initdb (trusting nobody: every login needs the password), then start on loopback."""
        password_file = self.folder / "password"
        password_file.write_text(self.password)
        if self._user:
            account = pwd.getpwnam(self._user)
            for path in (self.folder, password_file):
                os.chown(path, account.pw_uid, account.pw_gid)
        try:
            self._run(
                "initdb",
                *("-D", str(self.data), "-U", SUPERUSER, "-A", "scram-sha-256"),
                *("--pwfile", str(password_file), "-E", "UTF8", "--no-sync"),
            )
        finally:
            password_file.unlink()
        # Durability is the disk's business, not the tests': no fsync keeps them fast.
        options = f"-h {self.host} -p {self.port} -k {self.folder} -c fsync=off"
        options += " -c synchronous_commit=off -c full_page_writes=off"
        log = str(self.folder / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        return self

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new database; returns its libpq connection string (no password in it)."""
        subprocess.run(
            [str(self.bin / "createdb"), *self._client_args(), name],
            check=True,
            env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True,
        )
        return f"dbname={name} host={self.host} port={self.port} user={SUPERUSER}"

    def _client_args(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", SUPERUSER]

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        result = subprocess.run(
            command, user=self._user, cwd=self.folder, capture_output=True, text=True
        )
        if result.returncode:
            log = self.folder / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} failed: {result.stderr or result.stdout}{tail}")
