"""Private PostgreSQL and Redis servers that a fault test may stop, kill and start at will.

Other test runs share the machine's PostgreSQL (127.0.0.1:5432) and Redis (6379), so nothing here
ever touches those: each fixture starts its own server on an ephemeral loopback port in a temporary
directory, and always stops and removes it at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("HANDOFF_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"  # the OS user: postgres refuses to run as root


def free_port() -> int:
    """A loopback port nothing listens on right now (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def missing_postgres() -> str | None:
    """Why a private cluster cannot be started here, or None when it can."""
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        return f"no PostgreSQL binaries in {PG_BIN}"
    if shutil.which("runuser") is None:
        return "runuser is not installed"
    try:
        import pwd

        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"there is no {PG_USER!r} OS user to run PostgreSQL as"
    return None


@dataclass
class PrivatePostgres:
    """One throwaway cluster, owned by the `postgres` OS user, listening on 127.0.0.1 only."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def _pg(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        as_postgres = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*as_postgres, *args], cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )

    def _check(self, done: subprocess.CompletedProcess[str], what: str) -> None:
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{what} failed ({done.returncode}): {done.stdout}{done.stderr}\n{tail}")

    def initdb(self) -> None:
        done = self._pg(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", PG_USER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        self._check(done, "initdb")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c max_connections=100 -c shared_buffers=32MB"
        )
        done = self._pg(
            str(PG_BIN / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", options
        )
        self._check(done, "pg_ctl start")

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash: no checkpoint, connections cut; the next start runs recovery."""
        done = self._pg(str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30")
        self._check(done, f"pg_ctl stop -m {mode}")

    def running(self) -> bool:
        return self._pg(str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data)).returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = self._pg(
            str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER,
            "-d", database, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql,
        )  # fmt: skip
        self._check(done, "psql")
        return done.stdout.strip()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="handoff-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, user=PG_USER, group=PG_USER)
        cluster = PrivatePostgres(root=root, port=0)
        cluster.initdb()
        # The port is free when chosen but could be taken before the postmaster binds it: try again.
        for attempt in range(3):
            cluster.port = free_port()
            try:
                cluster.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        try:
            yield cluster
        finally:
            if cluster.running():
                cluster.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class PrivateRedis:
    """`redis-server` without persistence on an ephemeral loopback port."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)  # polling a port that is coming up; bounded by the deadline above

    def answers(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def shutdown(self) -> None:
        """`SHUTDOWN NOSAVE`, as an operator would; returns once the process has exited."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0, socket_connect_timeout=2.0)
        try:
            client.shutdown(nosave=True)
        except (redis.ConnectionError, OSError):
            pass  # the server closes the connection as it goes
        finally:
            client.close()
        assert self.process is not None
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGKILL: Redis vanishes as in a crash (nothing is persisted, so it comes back empty)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
