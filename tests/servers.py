"""Private RabbitMQ and Redis servers for the integration tests.

``RabbitMQServer`` and ``RedisServer`` start servers of their own from the system's binaries
(Debian packages ``rabbitmq-server`` and ``redis-server``), bound to 127.0.0.1 on free ports, with
all their files in one temporary directory. A test can stop them gracefully, start them again on the
same ports and data, kill them with SIGKILL and restart them, to check what the runtime does when a
broker goes away. ``close()`` stops everything that was started and removes the directory.

They never touch the machine's own servers: RabbitMQ gets its own node name, Erlang cookie, epmd
port, distribution port and config (``/etc/rabbitmq/rabbitmq-env.conf`` is not read); ports below
the kernel's ephemeral range are preferred so that outgoing connections cannot take a stopped
server's port before it is started again.

With ``tls=ServerTls(...)`` (certificate files, e.g. from ``tests/certificates.py``), a RabbitMQ
node also listens for AMQP over TLS on ``tls_port`` (``amqps_url``; its plain listener stays, for
the harness and for tests that need one) and a Redis listens only for TLS (``--port 0``,
``rediss://`` URL); ``require_client_cert`` makes either refuse clients without a certificate
signed by the CA (mutual TLS). The harness's own probes then speak TLS too.

``ExternalRabbitMQ`` and ``ExternalRedis`` stand for servers given by URL (see
``tests/integration/conftest.py``): they have the same interface, but everything that would stop or
kill the server raises ``PrivateServerRequired``.

This module does not import pytest; the blocking methods have ``a``-prefixed async twins that run
them in a thread, for use inside async tests.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self
from urllib.parse import urlsplit

HOST: Final = "127.0.0.1"

RABBITMQ_SERVER: Final = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQCTL: Final = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
EPMD: Final = Path("/usr/bin/epmd")
REDIS_SERVER: Final = Path("/usr/bin/redis-server")

# (binary, Debian package that installs it)
RABBITMQ_BINARIES: Final = (
    (RABBITMQ_SERVER, "rabbitmq-server"),
    (RABBITMQCTL, "rabbitmq-server"),
    (EPMD, "erlang-base"),
)
REDIS_BINARIES: Final = ((REDIS_SERVER, "redis-server"),)

# Ports of the machine's own servers (AMQP, Redis, epmd, Erlang distribution, management) and the
# range rabbitmqctl uses for its own distribution listener.
RESERVED_PORTS: Final = frozenset(
    {5672, 5671, 6379, 4369, 25672, 15672, 15692, *range(35672, 35683)}
)

SERVER_USER: Final = "rabbitmq"  # RabbitMQ runs as this user when the tests run as root

_LOG_TAIL_LINES: Final = 40


class ServerError(RuntimeError):
    """A private server could not be started, stopped or killed."""


class MissingBinaryError(ServerError):
    """A server's binary is not installed."""


class PrivateServerRequired(RuntimeError):
    """A fault-injection helper was called on a server given by URL."""


@dataclass(frozen=True)
class ServerTls:
    """A server's TLS files (PEM): the CA it verifies clients against, its certificate and key.

    ``require_client_cert``: refuse clients without a certificate signed by the CA (mutual
    TLS); the harness's own probes then present ``client_cert_file`` / ``client_key_file``.
    """

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_client_cert: bool = False
    client_cert_file: Path | None = None
    client_key_file: Path | None = None

    def __post_init__(self) -> None:
        if self.require_client_cert and (
            self.client_cert_file is None or self.client_key_file is None
        ):
            raise ValueError(
                "require_client_cert needs client_cert_file and client_key_file (the harness's "
                "probes present them)"
            )

    def client_context(self) -> ssl.SSLContext:
        """What the harness's probes connect with: verifying the server against ``ca_file``,
        presenting the client certificate if there is one."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if self.client_cert_file is not None and self.client_key_file is not None:
            context.load_cert_chain(str(self.client_cert_file), str(self.client_key_file))
        return context


def missing_binaries(binaries: Iterable[tuple[Path, str]]) -> list[str]:
    """Messages for the binaries that are missing or not executable, naming their packages."""
    return [
        f"{path} not found (install the Debian package {package!r})"
        for path, package in binaries
        if not os.access(path, os.X_OK)
    ]


def _require(binaries: Iterable[tuple[Path, str]]) -> None:
    missing = missing_binaries(binaries)
    if missing:
        raise MissingBinaryError("; ".join(missing))


# --- ports -----------------------------------------------------------------------------------

_ports_lock = threading.Lock()
_ports_taken: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _can_bind(port: int, *, reuse: bool = False) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound; with ``reuse``, as a server binds it
    (``SO_REUSEADDR``: connections of a stopped server in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing is bound to, never one of ``RESERVED_PORTS``.

    Prefers ports below the kernel's ephemeral range (checked by binding to them), so that a client
    connecting out cannot be given a stopped server's port as its own; falls back to letting the
    kernel choose (binding to port 0). Ports handed out are not handed out again in this process.
    """
    low, _ = _ephemeral_range()
    with _ports_lock:
        if low > 20000:
            for _ in range(200):
                port = random.randint(20000, low - 1)
                if port in RESERVED_PORTS or port in _ports_taken:
                    continue
                if _can_bind(port):
                    _ports_taken.add(port)
                    return port
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((HOST, 0))
                port = int(s.getsockname()[1])
            if port not in RESERVED_PORTS and port not in _ports_taken:
                _ports_taken.add(port)
                return port
    raise ServerError("no free port on 127.0.0.1")


def _amqp_frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, 0, len(payload)) + payload + b"\xce"


def _shortstr(value: bytes) -> bytes:
    return struct.pack(">B", len(value)) + value


def _amqp_login(port: int, timeout: float = 2.0) -> bool:
    """Whether ``guest`` can open a connection to vhost ``/``: a minimal AMQP 0-9-1 handshake.

    Header, start / start-ok (PLAIN), tune / tune-ok, open / open-ok, then close / close-ok, so
    the node logs an ordinary connection and no "client unexpectedly closed TCP connection".
    """

    def method(class_id: int, method_id: int, args: bytes = b"") -> bytes:
        return _amqp_frame(1, struct.pack(">HH", class_id, method_id) + args)

    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            buffer = b""

            def expect(class_id: int, method_id: int) -> bytes:
                nonlocal buffer
                while True:
                    if len(buffer) >= 7:
                        kind, _channel, size = struct.unpack(">BHI", buffer[:7])
                        if len(buffer) >= 8 + size:
                            payload, buffer = buffer[7 : 7 + size], buffer[8 + size :]
                            if kind == 1 and struct.unpack(">HH", payload[:4]) == (
                                class_id,
                                method_id,
                            ):
                                return payload[4:]
                            raise OSError(f"unexpected AMQP frame {payload[:4]!r}")
                    chunk = s.recv(4096)
                    if not chunk:
                        raise OSError("connection closed")
                    buffer += chunk

            s.sendall(b"AMQP\x00\x00\x09\x01")
            expect(10, 10)  # connection.start
            s.sendall(
                method(
                    10,
                    11,  # connection.start-ok
                    struct.pack(">I", 0)  # client properties: empty table
                    + _shortstr(b"PLAIN")
                    + struct.pack(">I", 12)
                    + b"\x00guest\x00guest"
                    + _shortstr(b"en_US"),
                )
            )
            channel_max, frame_max, _heartbeat = struct.unpack(">HIH", expect(10, 30)[:8])
            s.sendall(method(10, 31, struct.pack(">HIH", channel_max, frame_max, 0)))  # tune-ok
            s.sendall(method(10, 40, _shortstr(b"/") + _shortstr(b"") + b"\x00"))  # open
            expect(10, 41)  # open-ok
            s.sendall(method(10, 50, struct.pack(">H", 200) + _shortstr(b"") + b"\x00" * 4))
            expect(10, 51)  # close-ok
    except OSError:
        return False
    return True


def _accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- processes -------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, str, int, int] | None:
    """(command name, state, parent pid, session id) of a process, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, fields[0], int(fields[1]), int(fields[3])


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (each server is started in a session of its own)."""
    pids = []
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None and st[3] == sid and st[1] not in ("Z", "X"):
            pids.append(pid)
    return pids


def _wait_gone(pids: Iterable[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pending = set(pids)
    while pending:
        pending = {pid for pid in pending if _alive(pid)}
        if not pending:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _start_time(pid: int) -> str | None:
    """The boot-relative start time of a process: with the pid, it names one process for good."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()[19]


# Each server's directory holds this file: the test process that owns it, then one line per
# session the server's processes were started in. A test run killed with SIGKILL cannot stop its
# servers; the next run finds their directories and does (``sweep_stale_servers``).
_OWNER_FILE: Final = ".agnext-owner"
_DIR_PREFIXES: Final = ("agnext-redis-", "agnext-rabbitmq-")


def _record_session(base_dir: Path, sid: int) -> None:
    owner = base_dir / _OWNER_FILE
    with open(owner, "a") as f:
        if f.tell() == 0:
            f.write(f"{os.getpid()} {_start_time(os.getpid())}\n")
        f.write(f"{sid}\n")


def _works_in(pid: int, directory: Path) -> bool:
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return cwd == directory or directory in cwd.parents


def sweep_stale_servers(tmp_dir: str | Path | None = None) -> list[Path]:
    """Kill the private servers of test runs that died without stopping them, and remove their
    directories. Returns the directories removed."""
    removed = []
    for base_dir in Path(tmp_dir or tempfile.gettempdir()).iterdir():
        if not base_dir.name.startswith(_DIR_PREFIXES):
            continue
        try:
            owner, *sessions = (base_dir / _OWNER_FILE).read_text().split("\n")
        except OSError:
            continue
        owner_pid, _, owner_start = owner.partition(" ")
        if not (owner_pid.isdigit() and owner_start):
            continue  # being written by a run starting now
        if _start_time(int(owner_pid)) == owner_start:
            continue  # its test run is still going
        # Only processes still working in that directory: a session id may since have been reused.
        pids = [
            pid
            for sid in sessions
            if sid.isdigit()
            for pid in _session_pids(int(sid))
            if _works_in(pid, base_dir)
        ]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(pids, 10)
        shutil.rmtree(base_dir, ignore_errors=True)
        removed.append(base_dir)
    return removed


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text.splitlines()[-lines:])


class _RunAs:
    """Who a server runs as: the ``rabbitmq`` user when we are root, else ourselves."""

    def __init__(self, user: str | None) -> None:
        self.user = user
        if user is None:
            self.uid, self.gid = os.getuid(), os.getgid()
        else:
            entry = pwd.getpwnam(user)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """``subprocess.Popen`` as this user (no supplementary groups)."""
        if self.user is None:
            return subprocess.Popen(args, **kwargs)
        return subprocess.Popen(args, user=self.uid, group=self.gid, extra_groups=[], **kwargs)

    def check_reachable(self, path: Path) -> None:
        """Raise unless this user may go through every directory above ``path``."""
        if self.user is None:
            return
        for parent in path.resolve().parents:
            st = parent.stat()
            if st.st_uid == self.uid:
                ok = bool(st.st_mode & 0o100)
            elif st.st_gid == self.gid:
                ok = bool(st.st_mode & 0o010)
            else:
                ok = bool(st.st_mode & 0o001)
            if not ok:
                raise ServerError(
                    f"the {self.user!r} user cannot reach {path}: {parent} is not searchable "
                    f"for it; give the server a base_dir under /tmp"
                )

    def chown_tree(self, root: Path) -> None:
        if self.user is None:
            return
        for dirpath, _dirnames, filenames in os.walk(root):
            os.chown(dirpath, self.uid, self.gid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), self.uid, self.gid)


_open_servers: weakref.WeakSet[_PrivateServer] = weakref.WeakSet()


@atexit.register
def _close_leftovers() -> None:  # a safety net if a test run is interrupted
    for server in list(_open_servers):
        with contextlib.suppress(Exception):
            server.close()


# --- common part -----------------------------------------------------------------------------


class _PrivateServer:
    """Process handling shared by the two servers; subclasses define how to run and probe them."""

    kind = "server"
    is_private = True
    default_start_timeout = 30.0
    default_stop_timeout = 30.0

    def __init__(self, base_dir: str | Path | None, prefix: str) -> None:
        self._own_dir = base_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix=prefix) if base_dir is None else base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None
        self._closed = False
        self.start_count = 0
        self.last_start_seconds: float | None = None
        _open_servers.add(self)

    # subclass hooks
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    def _run_as(self) -> _RunAs:
        return _RunAs(None)

    def _before_start(self) -> None:
        pass

    def _ready(self, deadline: float) -> bool:
        raise NotImplementedError

    def _main_pid(self) -> int:
        """The pid of the server proper (what ``kill()`` sends SIGKILL to)."""
        assert self._proc is not None
        return self._proc.pid

    def _after_stop(self) -> None:
        pass

    def _close_extra(self) -> None:
        pass

    _port: int  # set by each server's constructor

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def console_log(self) -> Path:
        return self.base_dir / f"{self.kind}-console.log"

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return f"--- {self.console_log} ---\n{_tail(self.console_log, lines)}"

    # state

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's OS process id while it runs."""
        with self._lock:
            return self._main_pid() if self.is_running else None

    def _check_open(self) -> None:
        if self._closed:
            raise ServerError(f"{self!r} is closed")

    # lifecycle

    def start(self, timeout: float | None = None) -> Self:
        """Start the server (on the same ports and data as before) and wait until it serves."""
        timeout = self.default_start_timeout if timeout is None else timeout
        with self._lock:
            self._check_open()
            if self.is_running:
                return self
            self._reap()
            if not _can_bind(self.port, reuse=True):
                raise ServerError(
                    f"{self.kind}: port {self.port} on {HOST} is in use by another process"
                )
            started = time.monotonic()
            self._before_start()
            self._console = open(self.console_log, "ab")  # noqa: SIM115 - kept open while it runs
            deadline = started + timeout
            try:
                self._proc = self._run_as().popen(
                    self._command(),
                    env=self._env(),
                    cwd=self.base_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=self._console,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                _record_session(self.base_dir, self._proc.pid)
                while True:
                    if self._proc.poll() is not None:
                        raise ServerError(
                            f"{self.kind} exited with status {self._proc.returncode} while starting"
                            f"\n{self.log_tail()}"
                        )
                    if self._ready(deadline):
                        break
                    if time.monotonic() > deadline:
                        raise ServerError(
                            f"{self.kind} did not become ready within {timeout:.0f}s\n"
                            f"{self.log_tail()}"
                        )
                    time.sleep(0.05)
            except BaseException:
                self._force_down()
                raise
            self.last_start_seconds = time.monotonic() - started
            self.start_count += 1
            return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server gracefully (SIGTERM) and wait; SIGKILL and raise if it takes too long."""
        timeout = self.default_stop_timeout if timeout is None else timeout
        with self._lock:
            if not self.is_running:
                self._reap()
                return
            assert self._proc is not None
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._force_down()
                raise ServerError(
                    f"{self.kind} did not stop within {timeout:.0f}s; killed it\n{self.log_tail()}"
                ) from None
            self._reap()

    def kill(self) -> None:
        """SIGKILL the server's process (no shutdown at all) and wait until it is gone."""
        with self._lock:
            if not self.is_running:
                raise ServerError(f"{self.kind} is not running")
            self._force_down()

    def restart(self, timeout: float | None = None) -> Self:
        """``stop()`` then ``start()``: same ports, same data."""
        self.stop()
        return self.start(timeout)

    def ensure_running(self) -> Self:
        """Start the server if a test left it stopped or killed."""
        return self if self.is_running else self.start()

    def close(self) -> None:
        """Stop the server (killing it if it will not stop) and remove its directory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                try:
                    self.stop()
                except ServerError:
                    self._force_down()
            finally:
                self._force_down()
                self._close_extra()
                if self._own_dir:
                    shutil.rmtree(self.base_dir, ignore_errors=True)
                _open_servers.discard(self)

    # async twins, for async tests (they run the blocking method in a thread)

    async def astart(self, timeout: float | None = None) -> Self:
        return await asyncio.to_thread(self.start, timeout)

    async def astop(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self.stop, timeout)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def arestart(self, timeout: float | None = None) -> Self:
        return await asyncio.to_thread(self.restart, timeout)

    async def aensure_running(self) -> Self:
        return await asyncio.to_thread(self.ensure_running)

    # internals

    def _force_down(self) -> None:
        """SIGKILL the server proper, then whatever else is left in its session; wait for all."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            main = self._main_pid()
            with contextlib.suppress(ProcessLookupError):
                os.kill(main, signal.SIGKILL)
            if not _wait_gone([main], 10):
                raise ServerError(f"{self.kind}: process {main} survived SIGKILL")
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._reap()

    def _reap(self) -> None:
        """Kill leftovers of the last run's session (helpers of the server) and close its log."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                return
            leftovers = _session_pids(proc.pid)
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _wait_gone(leftovers, 10)
            self._proc = None
            self._after_stop()
        if self._console is not None:
            self._console.close()
            self._console = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- Redis -----------------------------------------------------------------------------------


class RedisServer(_PrivateServer):
    """A private ``redis-server`` on 127.0.0.1 with an append-only file (``appendfsync everysec``).

    The process is ``redis-server`` itself (``--daemonize no``), run as the current user.
    """

    kind = "redis"
    default_start_timeout = 20.0

    def __init__(
        self,
        *,
        port: int | None = None,
        base_dir: str | Path | None = None,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        extra_args: Sequence[str] = (),
        binary: str | Path = REDIS_SERVER,
        tls: ServerTls | None = None,
    ) -> None:
        self.binary = Path(binary)
        _require([(self.binary, "redis-server")])
        super().__init__(base_dir, "agnext-redis-")
        self._port = free_port() if port is None else port
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = tuple(extra_args)
        self.tls = tls
        self.data_dir = self.base_dir / "data"
        self.data_dir.mkdir(exist_ok=True)

    def __repr__(self) -> str:
        return f"RedisServer({self.url!r}, running={self.is_running})"

    @property
    def url(self) -> str:
        """``redis://`` (``rediss://`` with TLS: the port then speaks only TLS)."""
        scheme = "redis" if self.tls is None else "rediss"
        return f"{scheme}://{HOST}:{self._port}/0"

    @property
    def redis_url(self) -> str:
        return self.url

    @property
    def log_file(self) -> Path:
        return self.console_log

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self._port)]
        return [
            "--port", "0",
            "--tls-port", str(self._port),
            "--tls-cert-file", str(self.tls.cert_file),
            "--tls-key-file", str(self.tls.key_file),
            "--tls-ca-cert-file", str(self.tls.ca_file),
            "--tls-auth-clients", "yes" if self.tls.require_client_cert else "no",
        ]  # fmt: skip

    def _command(self) -> list[str]:
        return [
            str(self.binary),
            *self._listen_args(),
            "--bind", HOST,
            "--protected-mode", "no",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--logfile", "",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            *self.extra_args,
        ]  # fmt: skip

    def _ready(self, deadline: float) -> bool:
        try:
            return self.command("PING", timeout=0.5) == b"+PONG"
        except OSError:
            return False

    def command(self, *args: str, timeout: float = 5.0) -> bytes:
        """Send one command with a bare socket; the first line of the reply (e.g. ``b"+PONG"``)."""
        payload = f"*{len(args)}\r\n".encode()
        for arg in args:
            data = arg.encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        with self._connect(timeout) as s:
            s.sendall(payload)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.split(b"\r\n", 1)[0]

    def _connect(self, timeout: float) -> socket.socket:
        raw = socket.create_connection((HOST, self._port), timeout=timeout)
        if self.tls is None:
            return raw
        try:
            return self.tls.client_context().wrap_socket(raw, server_hostname=HOST)
        except BaseException:
            raw.close()
            raise


# --- RabbitMQ --------------------------------------------------------------------------------


class RabbitMQServer(_PrivateServer):
    """A private RabbitMQ node (``rabbitmq-server`` from the system) on 127.0.0.1.

    Everything lives in ``base_dir``: config, enabled plugins (none), mnesia data, logs, pid file
    and a ``home`` directory with the Erlang cookie that both the node and ``ctl()`` read. The node
    registers with an ``epmd`` of its own on a private port, started by ``start()`` and stopped by
    ``close()``. As root, the node and its epmd run as the ``rabbitmq`` user (who then owns
    ``base_dir``), which is what the packaged scripts would do.

    The process started is the ``rabbitmq-server`` shell script, which runs the Erlang VM
    (``beam.smp``) as its child, turns SIGTERM into a graceful shutdown, and exits when the VM does;
    ``kill()`` sends SIGKILL to the ``beam.smp`` whose pid the node wrote into its pid file, after
    checking that it is this script's child.
    """

    kind = "rabbitmq"
    default_start_timeout = 60.0
    default_stop_timeout = 60.0

    def __init__(
        self,
        *,
        port: int | None = None,
        dist_port: int | None = None,
        epmd_port: int | None = None,
        nodename: str | None = None,
        base_dir: str | Path | None = None,
        consumer_timeout_ms: int | None = None,
        max_message_size: int | None = None,
        extra_config: Mapping[str, str | int] | None = None,
        run_as: str | None = None,
        tls: ServerTls | None = None,
        tls_port: int | None = None,
    ) -> None:
        _require(RABBITMQ_BINARIES)
        if run_as is None and os.geteuid() == 0:
            run_as = SERVER_USER
        self._user = _RunAs(run_as)
        super().__init__(base_dir, "agnext-rabbitmq-")
        self._port = free_port() if port is None else port
        self.dist_port = free_port() if dist_port is None else dist_port
        self.epmd_port = free_port() if epmd_port is None else epmd_port
        self.nodename = nodename or f"agnexttest-{uuid.uuid4().hex[:8]}@localhost"
        self.consumer_timeout_ms = consumer_timeout_ms
        self.max_message_size = max_message_size
        self.extra_config = dict(extra_config or {})
        self.tls = tls
        self.tls_port = (free_port() if tls_port is None else tls_port) if tls else None
        self.tls_dir = self.base_dir / "tls"  # copies of the TLS files, readable by the node
        self.home = self.base_dir / "home"
        self.mnesia_base = self.base_dir / "mnesia"
        self.log_dir = self.base_dir / "log"
        self.config_file = self.base_dir / "rabbitmq.conf"
        self.pid_file = self.base_dir / "rabbitmq.pid"
        self._epmd: subprocess.Popen[bytes] | None = None
        self._epmd_log: IO[bytes] | None = None
        self._cookie = uuid.uuid4().hex.upper()
        self._prepared = False

    def __repr__(self) -> str:
        return f"RabbitMQServer({self.nodename!r}, {self.amqp_url!r}, running={self.is_running})"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@{HOST}:{self._port}/"

    @property
    def url(self) -> str:
        return self.amqp_url

    @property
    def amqps_url(self) -> str:
        """The TLS listener's URL (``amqps://``, user ``guest``); only with ``tls``."""
        if self.tls_port is None:
            raise ServerError("this RabbitMQ node was started without tls=")
        return f"amqps://guest:guest@{HOST}:{self.tls_port}/"

    @property
    def data_dir(self) -> Path:
        """The node's mnesia directory (queues, messages, definitions)."""
        return self.mnesia_base / self.nodename

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.nodename}.log"

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return (
            f"--- {self.log_file} ---\n{_tail(self.log_file, lines)}\n"
            f"--- {self.console_log} ---\n{_tail(self.console_log, lines)}"
        )

    def config_text(self) -> str:
        """The ``rabbitmq.conf`` the node runs with."""
        settings: dict[str, str | int] = {
            "listeners.tcp.default": f"{HOST}:{self._port}",
            "disk_free_limit.absolute": "50MB",
            "vm_memory_high_watermark.relative": "0.4",
            "log.file.level": "info",
            "log.console": "false",
        }
        if self.consumer_timeout_ms is not None:
            settings["consumer_timeout"] = self.consumer_timeout_ms
        if self.max_message_size is not None:
            settings["max_message_size"] = self.max_message_size
        if self.tls is not None:
            settings.update(
                {
                    "listeners.ssl.default": f"{HOST}:{self.tls_port}",
                    "ssl_options.cacertfile": str(self.tls_dir / "ca.pem"),
                    "ssl_options.certfile": str(self.tls_dir / "cert.pem"),
                    "ssl_options.keyfile": str(self.tls_dir / "key.pem"),
                    "ssl_options.verify": "verify_peer",
                    "ssl_options.fail_if_no_peer_cert": str(self.tls.require_client_cert).lower(),
                }
            )
        settings.update(self.extra_config)
        return "".join(f"{key} = {value}\n" for key, value in settings.items())

    def _prepare(self) -> None:
        if self._prepared:
            return
        self._user.check_reachable(self.base_dir)
        for d in (self.home, self.mnesia_base, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config_text())
        (self.base_dir / "enabled_plugins").write_text("[].\n")
        # An empty env file: /etc/rabbitmq/rabbitmq-env.conf (the system node's) is not read.
        (self.base_dir / "rabbitmq-env.conf").write_text("")
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(self._cookie)
        cookie.chmod(0o400)
        if self.tls is not None:
            # Copies in base_dir, which the node's user owns (as root, the given files may not
            # be readable by it).
            self.tls_dir.mkdir(exist_ok=True)
            for source, name in (
                (self.tls.ca_file, "ca.pem"),
                (self.tls.cert_file, "cert.pem"),
                (self.tls.key_file, "key.pem"),
            ):
                shutil.copyfile(source, self.tls_dir / name)
                (self.tls_dir / name).chmod(0o400 if name == "key.pem" else 0o444)
        self._user.chown_tree(self.base_dir)
        self._prepared = True

    def env(self) -> dict[str, str]:
        """The environment of the node and of ``ctl()``: nothing inherited but ``PATH``."""
        dist_iface = "-kernel inet_dist_use_interface {127,0,0,1}"
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(self.home),  # the Erlang cookie is $HOME/.erlang.cookie
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": HOST,
            "RABBITMQ_CONF_ENV_FILE": str(self.base_dir / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self._port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.config_file),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base_dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base_dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.mnesia_base),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_LOGS": str(self.log_file),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": dist_iface,
            "RABBITMQ_CTL_ERL_ARGS": dist_iface,
        }

    def _env(self) -> dict[str, str]:
        return self.env()

    def _run_as(self) -> _RunAs:
        return self._user

    def _command(self) -> list[str]:
        return [str(RABBITMQ_SERVER)]

    def _before_start(self) -> None:
        self._prepare()
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        if not _can_bind(self.dist_port, reuse=True):
            raise ServerError(f"rabbitmq: distribution port {self.dist_port} is in use")
        if self.tls_port is not None and not _can_bind(self.tls_port, reuse=True):
            raise ServerError(f"rabbitmq: TLS port {self.tls_port} is in use")
        self._start_epmd()

    def _start_epmd(self) -> None:
        if self._epmd is not None and self._epmd.poll() is None:
            return
        self._stop_epmd()
        if not _can_bind(self.epmd_port, reuse=True):
            raise ServerError(f"rabbitmq: epmd port {self.epmd_port} is in use")
        self._epmd_log = open(self.base_dir / "epmd.log", "ab")  # noqa: SIM115
        # In the foreground (no -daemon), in a session of its own: we own and reap it.
        self._epmd = self._user.popen(
            [str(EPMD), "-port", str(self.epmd_port), "-address", HOST],
            cwd=self.base_dir,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            stdin=subprocess.DEVNULL,
            stdout=self._epmd_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _record_session(self.base_dir, self._epmd.pid)
        deadline = time.monotonic() + 10
        while not _accepts(self.epmd_port):
            if self._epmd.poll() is not None or time.monotonic() > deadline:
                self._stop_epmd()
                raise ServerError(
                    f"epmd on port {self.epmd_port} did not start\n"
                    f"{_tail(self.base_dir / 'epmd.log')}"
                )
            time.sleep(0.02)

    def _stop_epmd(self) -> None:
        if self._epmd is not None:
            if self._epmd.poll() is None:
                self._epmd.terminate()
                try:
                    self._epmd.wait(5)
                except subprocess.TimeoutExpired:
                    self._epmd.kill()
                    self._epmd.wait(5)
            self._epmd = None
        if self._epmd_log is not None:
            self._epmd_log.close()
            self._epmd_log = None

    def _close_extra(self) -> None:
        self._stop_epmd()

    @property
    def epmd_pid(self) -> int | None:
        return self._epmd.pid if self._epmd is not None and self._epmd.poll() is None else None

    def _ready(self, deadline: float) -> bool:
        # The AMQP listener opens at the very end of the boot: once guest can log in to vhost "/",
        # clients can work. (Cheaper than `rabbitmqctl await_startup`, which costs ~1 s of CPU, and
        # more prompt than the log, which the node writes with a delay of up to 2 s.)
        if not (_accepts(self._port) and _amqp_login(self._port)):
            return False
        return self.tls is None or self._tls_handshake()

    def _tls_handshake(self) -> bool:
        """Whether the TLS listener completes a handshake (with the harness's probe identity)."""
        assert self.tls is not None
        assert self.tls_port is not None
        try:
            with (
                socket.create_connection((HOST, self.tls_port), timeout=1.0) as raw,
                self.tls.client_context().wrap_socket(raw, server_hostname=HOST) as s,
            ):
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return bool(s.recv(1))  # connection.start
        except OSError:
            return False

    def _main_pid(self) -> int:
        """The node's ``beam.smp``: from the pid file, else the script's ``beam.smp`` child."""
        assert self._proc is not None
        script = self._proc.pid
        candidates: list[int] = []
        with contextlib.suppress(OSError, ValueError):
            candidates.append(int(self.pid_file.read_text().strip()))
        candidates += [pid for pid in _all_pids() if (st := _stat(pid)) and st[2] == script]
        for pid in candidates:
            st = _stat(pid)
            if st is not None and st[0] == "beam.smp" and st[2] == script and st[1] != "Z":
                return pid
        # The script has not started the VM yet (or it has already exited): the script itself.
        return script

    def ctl(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl -n <node> *args`` against this node (same env, cookie, epmd port)."""
        self._check_open()
        self._prepare()
        result = subprocess.run(
            [str(RABBITMQCTL), "-n", self.nodename, *args],
            env=self.env(),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ServerError(
                f"rabbitmqctl {' '.join(args)} exited with {result.returncode}\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    async def actl(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(self.ctl, *args, timeout=timeout, check=check)


# --- servers given by URL --------------------------------------------------------------------


class _ExternalServer:
    is_private = False
    env_var = ""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self.host = parts.hostname or HOST
        self.port = parts.port or 0
        self.start_count = 0
        self.last_start_seconds: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def is_running(self) -> bool:
        return True

    def _refuse(self, what: str) -> PrivateServerRequired:
        parts = urlsplit(self.url)
        netloc = f"{parts.hostname}:{parts.port}" if parts.port else f"{parts.hostname}"
        shown = parts._replace(netloc=netloc).geturl()  # without the password
        return PrivateServerRequired(
            f"{what}() on {shown}: fault-injection tests need the private servers the test "
            f"harness starts; unset {self.env_var} to run them"
        )

    def start(self, timeout: float | None = None) -> Self:
        raise self._refuse("start")

    def stop(self, timeout: float | None = None) -> None:
        raise self._refuse("stop")

    def kill(self) -> None:
        raise self._refuse("kill")

    def restart(self, timeout: float | None = None) -> Self:
        raise self._refuse("restart")

    def ensure_running(self) -> Self:
        return self

    async def astart(self, timeout: float | None = None) -> Self:
        raise self._refuse("start")

    async def astop(self, timeout: float | None = None) -> None:
        raise self._refuse("stop")

    async def akill(self) -> None:
        raise self._refuse("kill")

    async def arestart(self, timeout: float | None = None) -> Self:
        raise self._refuse("restart")

    async def aensure_running(self) -> Self:
        return self

    def close(self) -> None:
        pass


class ExternalRabbitMQ(_ExternalServer):
    """A RabbitMQ given by ``AGNEXT_TEST_AMQP_URL``; only ``amqp_url`` and friends work."""

    env_var = "AGNEXT_TEST_AMQP_URL"

    @property
    def amqp_url(self) -> str:
        return self.url

    def ctl(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        raise self._refuse("ctl")

    async def actl(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        raise self._refuse("ctl")


class ExternalRedis(_ExternalServer):
    """A Redis given by ``AGNEXT_TEST_REDIS_URL``; only ``url`` and friends work."""

    env_var = "AGNEXT_TEST_REDIS_URL"

    @property
    def redis_url(self) -> str:
        return self.url


class AmqpCleanup:
    """Names of queues and exchanges a test made, to delete after it (``amqp_cleanup``)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, name: str) -> str:
        self.queues.append(name)
        return name

    def exchange(self, name: str) -> str:
        self.exchanges.append(name)
        return name


AnyRabbitMQ = RabbitMQServer | ExternalRabbitMQ
AnyRedis = RedisServer | ExternalRedis
