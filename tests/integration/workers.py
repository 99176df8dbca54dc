"""Worker subprocesses and in-process runtimes for the broker runtime's integration tests.

``WorkerPool`` starts ``agnext-broker worker --app tests.integration.apps:<function>`` (and client
subprocesses) against the test's servers and namespace, SIGKILLs or terminates them, waits until
Redis shows them registered (``<ns>:{<ns>}:workers``) or owning partitions
(``<ns>:{<ns>}:owner:<type>:<p>``),
and keeps each one's stderr in a log file, whose tails ``logs()`` returns for failure messages.
``close()`` kills whatever is still running.

``RuntimePool`` makes started in-process ``BrokerAgentRuntime``s and stops them all at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis.asyncio

from agnext_broker.application.broker import BrokerAgentRuntime, BrokerSettings
from agnext_broker.application.broker._names import Names
from tests.integration.apps import COUNTER_TYPE, FRAGILE_TYPE
from tests.servers import AmqpCleanup, AnyRabbitMQ, AnyRedis

REPO_ROOT = Path(__file__).resolve().parents[2]

HEARTBEAT_INTERVAL = 0.5
WORKER_EXPIRY = 2.0
PARTITIONS = 4
AGENT_TYPES = (COUNTER_TYPE, FRAGILE_TYPE)

T = TypeVar("T")


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:])


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    what: str,
    details: Callable[[], str] = lambda: "",
    period: float = 0.05,
) -> T:
    """Poll ``check`` until it returns something truthy and return that; fail after ``timeout``
    seconds with ``what`` and ``details()`` in the message."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}\n{details()}")
        await asyncio.sleep(period)


# -- what Redis says ---------------------------------------------------------------------------


async def live_workers(client: redis.asyncio.Redis, namespace: str) -> set[str]:
    """Ids in ``<ns>:workers`` whose heartbeat has not expired."""
    # Scores are expiries in ms on Redis' clock, which is this machine's.
    ids = await client.zrangebyscore(Names(namespace).workers_key, time.time() * 1000, "+inf")
    return {str(_text(i)) for i in ids}


async def owners(
    client: redis.asyncio.Redis, namespace: str, agent_type: str, partitions: int = PARTITIONS
) -> dict[int, str | None]:
    """Partition -> the worker id in ``<ns>:{<ns>}:owner:<type>:<p>`` (None when unclaimed)."""
    keys = [Names(namespace).owner_key(agent_type, p) for p in range(partitions)]
    values = await client.mget(keys)
    return {p: _text(v) for p, v in enumerate(values)}


async def shared_owners(
    client: redis.asyncio.Redis,
    namespace: str,
    agent_type: str,
    worker_ids: set[str],
    *,
    timeout: float,
    stable_for: float = 3 * HEARTBEAT_INTERVAL,
    details: Callable[[], str] = lambda: "",
) -> dict[int, str]:
    """Wait until every partition of ``agent_type`` is owned by one of ``worker_ids``, each of
    them owns at least one, and that has not changed for ``stable_for`` seconds (a hand-over in
    progress finishes within a heartbeat or two); return partition -> owner."""
    last: dict[int, str | None] = {}
    since = time.monotonic()

    async def settled() -> dict[int, str] | None:
        nonlocal last, since
        current = await owners(client, namespace, agent_type)
        if current != last:
            last, since = current, time.monotonic()
        shared = set(current.values()) == worker_ids
        if shared and time.monotonic() - since >= stable_for:
            return {p: str(w) for p, w in current.items()}
        return None

    return await wait_until(
        settled,
        timeout=timeout,
        what=f"the partitions of {agent_type} are shared by {sorted(worker_ids)}",
        details=lambda: f"owners: {last}\n{details()}",
        period=0.1,
    )


async def state_document(
    client: redis.asyncio.Redis, namespace: str, agent_type: str, key: str
) -> dict[str, Any] | None:
    """The agent's state document ``<ns>:agent:{<type>/<key>}``, parsed."""
    text = await client.get(f"{namespace}:agent:{{{agent_type}/{key}}}")
    return None if text is None else dict(json.loads(text))


async def applied_messages(
    client: redis.asyncio.Redis, namespace: str, agent_type: str, key: str
) -> list[tuple[str, str]]:
    """The messages the agent applied, as (source, id), oldest first
    (``<ns>:applied:{<type>/<key>}``)."""
    members = await client.zrange(f"{namespace}:applied:{{{agent_type}/{key}}}", 0, -1)
    return [tuple(json.loads(str(_text(member)))) for member in members]


# -- subprocesses ------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    worker_id: str = ""
    stdout_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stdout(self) -> str:
        if self.stdout_path is None or not self.stdout_path.exists():
            return ""
        return self.stdout_path.read_text(errors="replace")


@dataclass
class WorkerPool:
    """Worker and client subprocesses of one test (one namespace)."""

    amqp_url: str
    redis_url: str
    namespace: str
    log_dir: Path
    partitions: int = PARTITIONS
    env: Mapping[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        python_path = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
                "PYTHONUNBUFFERED": "1",
                "AGNEXT_AMQP_URL": self.amqp_url,
                "AGNEXT_REDIS_URL": self.redis_url,
                "AGNEXT_NAMESPACE": self.namespace,
                "AGNEXT_PARTITIONS": str(self.partitions),
                "AGNEXT_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
                "AGNEXT_WORKER_EXPIRY": str(WORKER_EXPIRY),
                **self.env,
                **(extra or {}),
            }
        )
        return env

    def _spawn(
        self, name: str, args: list[str], env: Mapping[str, str] | None, *, stdout: bool = False
    ) -> Process:
        log_path = self.log_dir / f"{name}.log"
        stdout_path = self.log_dir / f"{name}.out" if stdout else None
        with open(log_path, "wb") as log, open(stdout_path or os.devnull, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, *args],
                cwd=REPO_ROOT,
                env=self._env(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=log,
                start_new_session=True,  # a SIGINT to pytest does not reach them first
            )
        handle = Process(name, process, log_path, stdout_path=stdout_path)
        self.processes.append(handle)
        return handle

    def start_worker(
        self,
        app: str = "register_counter",
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        """``agnext-broker worker --app tests.integration.apps:<app>`` (or ``--app <app>`` when
        it names its module) with a known worker id."""
        name = name or f"worker{len(self.processes) + 1}"
        worker_id = f"{name}-{uuid.uuid4().hex[:6]}"
        spec = app if ":" in app else f"tests.integration.apps:{app}"
        args = ["-m", "agnext_broker", "worker", "--app", spec]
        handle = self._spawn(name, [*args, "--worker-id", worker_id], env)
        handle.worker_id = worker_id
        return handle

    def start_module(
        self, name: str, module: str, args: list[str], *, env: Mapping[str, str] | None = None
    ) -> Process:
        """``python -m <module> <args>``: a worker of the test's own making (not the
        ``agnext-broker worker`` command), with a known worker id (``AGNEXT_WORKER_ID``)."""
        worker_id = f"{name}-{uuid.uuid4().hex[:6]}"
        handle = self._spawn(
            name, ["-m", module, *args], {**(env or {}), "AGNEXT_WORKER_ID": worker_id}
        )
        handle.worker_id = worker_id
        return handle

    def start_client(
        self, name: str, args: list[str], *, env: Mapping[str, str] | None = None
    ) -> Process:
        """``tests.integration.apps.client_main`` with ``args``; its JSON result on stdout."""
        code = "from tests.integration.apps import client_main; client_main()"
        return self._spawn(name, ["-c", code, *args], env, stdout=True)

    async def wait_registered(
        self, client: redis.asyncio.Redis, *workers: Process, timeout: float = 30.0
    ) -> None:
        """Until every worker's id is live in ``<ns>:workers``."""

        async def registered() -> bool:
            for worker in workers:
                if not worker.alive:
                    raise AssertionError(
                        f"{worker.name} exited with {worker.process.returncode}\n{self.logs()}"
                    )
            return {w.worker_id for w in workers} <= await live_workers(client, self.namespace)

        await wait_until(
            registered,
            timeout=timeout,
            what=f"{[w.name for w in workers]} are registered",
            details=self.logs,
        )

    async def start_hosts(
        self,
        client: redis.asyncio.Redis,
        count: int,
        app: str = "register_counter",
        agent_type: str = COUNTER_TYPE,
    ) -> list[Process]:
        """Start ``count`` workers one after the other, each once the previous ones share the
        partitions of ``agent_type`` (workers started at the same moment can lose their
        partition claims: see test_broker_partitions.py)."""
        hosts: list[Process] = []
        for _ in range(count):
            worker = self.start_worker(app)
            await self.wait_registered(client, worker)
            hosts.append(worker)
            await shared_owners(
                client,
                self.namespace,
                agent_type,
                {w.worker_id for w in hosts},
                timeout=20,
                stable_for=0 if len(hosts) == 1 else 3 * HEARTBEAT_INTERVAL,
                details=self.logs,
            )
        return hosts

    async def wait_exit(self, process: Process, timeout: float = 60.0) -> int:
        async def exited() -> bool:
            return not process.alive

        def details() -> str:
            if process.alive and not process.worker_id:  # a client dumps its tasks on SIGUSR1
                os.kill(process.pid, signal.SIGUSR1)
                time.sleep(1.0)
            return self.logs(80)

        await wait_until(
            exited, timeout=timeout, what=f"{process.name} exits", details=details, period=0.1
        )
        return process.process.returncode

    def kill(self, process: Process) -> None:
        """SIGKILL, and reap it."""
        if process.alive:
            os.kill(process.pid, signal.SIGKILL)
        process.process.wait(timeout=10)

    async def terminate(self, process: Process, timeout: float = 30.0) -> int:
        """SIGTERM (the worker drains and leaves), then wait for it to exit."""
        if process.alive:
            process.process.terminate()
        return await self.wait_exit(process, timeout)

    def close(self) -> None:
        """Kill every process still running (tests that stop them gracefully do so themselves)."""
        for process in self.processes:
            if process.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.process.wait(timeout=10)

    def logs(self, lines: int = 30) -> str:
        """The last lines of every process's stderr, labelled."""
        parts = []
        for p in self.processes:
            state = "running" if p.alive else f"exit {p.process.returncode}"
            parts.append(
                f"--- {p.name} (pid {p.pid}, {p.worker_id or 'client'}, {state}) ---\n"
                + _tail(p.log_path, lines)
            )
        return "\n".join(parts)


# -- in-process runtimes -----------------------------------------------------------------------

STOP_TIMEOUT = 30.0


def task_stacks() -> str:
    """The stacks of the event loop's tasks (what a hanging await is waiting for)."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.print_stack(limit=12, file=out)
    return out.getvalue()


async def bounded(awaitable: Awaitable[T], what: str, timeout: float = STOP_TIMEOUT) -> T:
    """Await ``awaitable``, failing with the tasks' stacks if it takes longer than ``timeout``
    (pytest-timeout's SIGALRM can be swallowed by the task it lands in)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        stacks = task_stacks()
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        raise AssertionError(f"{what} did not return within {timeout:g} s; tasks:\n{stacks}")
    return task.result()


def broker_settings(
    amqp_url: str, redis_url: str, namespace: str, **changes: Any
) -> BrokerSettings:
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "redis_url": redis_url,
        "namespace": namespace,
        "partitions": PARTITIONS,
        "heartbeat_interval": HEARTBEAT_INTERVAL,
        "worker_expiry": WORKER_EXPIRY,
    }
    values.update(changes)
    return BrokerSettings(**values)


@dataclass
class RuntimePool:
    """In-process broker runtimes of one test; ``close()`` stops those still running."""

    amqp_url: str
    redis_url: str
    namespace: str
    running: list[BrokerAgentRuntime] = field(default_factory=list)

    async def start(
        self, app: Callable[[BrokerAgentRuntime], Awaitable[None]] | None = None, **changes: Any
    ) -> BrokerAgentRuntime:
        """A started runtime; ``app(runtime)`` registers its agents first."""
        runtime = BrokerAgentRuntime(
            broker_settings(self.amqp_url, self.redis_url, self.namespace, **changes)
        )
        if app is not None:
            await app(runtime)
        starting = runtime.start()
        self.running.append(runtime)  # stopped by close() even if it fails to start
        await starting
        return runtime

    async def stop(self, runtime: BrokerAgentRuntime) -> None:
        self.running.remove(runtime)
        await bounded(runtime.stop(), "runtime.stop()")
        await bounded(runtime.close(), "runtime.close()")

    async def close(self) -> None:
        errors: list[BaseException] = []
        for runtime in reversed(self.running):
            try:
                await bounded(runtime.stop(), "runtime.stop()")
                await bounded(runtime.close(), "runtime.close()")
            except Exception as e:
                errors.append(e)
        self.running.clear()
        if errors:
            raise errors[0]


# -- fixtures ----------------------------------------------------------------------------------
# A test module uses them by importing ``runtimes_fixture`` / ``workers_fixture`` (pytest finds
# fixtures in a module's namespace) and taking ``runtimes`` / ``workers`` arguments.


def forget_namespace(
    cleanup: AmqpCleanup, agent_types: Iterable[str], partitions: int = PARTITIONS
) -> None:
    """Register the namespace's exchanges and queues for deletion after the test."""
    namespace = cleanup.namespace
    for agent_type in agent_types:
        for partition in range(partitions):
            cleanup.queue(f"{namespace}.agent.{agent_type}.{partition}")
    cleanup.queue(f"{namespace}.dead-letter")
    for exchange in ("events", "direct", "replies", "dlx"):
        cleanup.exchange(f"{namespace}.{exchange}")


@pytest.fixture(name="runtimes")
async def runtimes_fixture(
    rabbitmq: AnyRabbitMQ,
    redis_server: AnyRedis,
    namespace: str,
    redis_client: redis.asyncio.Redis,
    amqp_cleanup: AmqpCleanup,
) -> AsyncIterator[RuntimePool]:
    """In-process runtimes on the test's servers and namespace; stopped after the test."""
    forget_namespace(amqp_cleanup, AGENT_TYPES)
    pool = RuntimePool(rabbitmq.amqp_url, redis_server.redis_url, namespace)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(name="workers")
async def workers_fixture(
    rabbitmq: AnyRabbitMQ,
    redis_server: AnyRedis,
    namespace: str,
    redis_client: redis.asyncio.Redis,
    amqp_cleanup: AmqpCleanup,
    tmp_path: Path,
) -> AsyncIterator[WorkerPool]:
    """Worker/client subprocesses on the test's servers and namespace; killed after the test
    (their log tails are printed, so a failing test shows them)."""
    forget_namespace(amqp_cleanup, AGENT_TYPES)
    pool = WorkerPool(rabbitmq.amqp_url, redis_server.redis_url, namespace, tmp_path)
    try:
        yield pool
    finally:
        pool.close()
        print(pool.logs(60))
