"""Run the conformance suite against agents hosted by worker processes.

The test process runs a :class:`ClusterRuntime`: a broker runtime that hosts only what tests
register directly (the collector) and sends every registration marked :func:`mirrored` to the
worker processes instead, which run the same function on their own runtime for the test's
namespace. Commands and answers travel through Redis lists (test plumbing, not the runtime's).

A worker process is ``python -m tests.conformance.cluster <amqp_url> <redis_url> <name>``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis

from agnext_broker import AgentType
from agnext_broker.application.broker import BrokerAgentRuntime, BrokerSettings
from agnext_broker.application.broker._assignment import plan
from agnext_broker.application.broker._remote_errors import (
    error_message,
    error_type_name,
    rebuild_error,
)

COMMANDS = "agnext-test:cluster:{name}"
ANSWERS = "agnext-test:answer:{id}"

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def mirrored(function: F) -> F:
    """Registration functions marked so run on the cluster's workers under a ClusterRuntime."""

    @functools.wraps(function)
    async def run(runtime: Any, *args: Any, **kwargs: Any) -> Any:
        mirror = getattr(runtime, "mirror", None)
        if mirror is None:
            return await function(runtime, *args, **kwargs)
        return await mirror(function, args, kwargs)

    return run  # type: ignore[return-value]


def _encode(value: Any) -> Any:
    if isinstance(value, type):
        return {"class": f"{value.__module__}:{value.__qualname__}"}
    if isinstance(value, AgentType):
        return {"agent_type": value.type}
    if callable(value):
        return {"function": f"{value.__module__}:{value.__qualname__}"}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((kind, text),) = value.items()
        if kind in ("class", "function"):
            module, _, name = text.partition(":")
            target: Any = importlib.import_module(module)
            for part in name.split("."):
                target = getattr(target, part)
            return target
        if kind == "agent_type":
            return AgentType(text)
    return value


class ClusterRuntime(BrokerAgentRuntime):
    """A broker runtime whose mirrored registrations run on the cluster's worker processes."""

    def __init__(
        self, settings: BrokerSettings, redis_url: str, workers: list[str], **kwargs: Any
    ) -> None:
        super().__init__(settings, **kwargs)
        self._commands = Redis.from_url(redis_url, decode_responses=True)
        self._workers = workers

    async def _ask(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        answers = []
        ids = []
        for worker in self._workers:
            answer_id = uuid.uuid4().hex
            ids.append(answer_id)
            payload = {**command, "namespace": self.settings.namespace, "answer": answer_id}
            await self._commands.rpush(COMMANDS.format(name=worker), json.dumps(payload))
        for answer_id in ids:
            answers.append(json.loads(await _pop(self._commands, ANSWERS.format(id=answer_id))))
        return answers

    async def mirror(
        self, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        command = {
            "op": "call",
            "function": _encode(function)["function"],
            "args": [_encode(a) for a in args],
            "kwargs": {k: _encode(v) for k, v in kwargs.items()},
        }
        answers = await self._ask(command)
        for answer in answers:
            if "error" in answer:
                raise rebuild_error(answer["error"]["type"], answer["error"]["message"])
        session = self._session
        assert session is not None
        await session.liveness.beat()  # learn at once which types the workers host now
        await self._until_partitions_settle()
        return _decode(answers[0]["result"])

    async def _until_partitions_settle(self, timeout: float = 20.0) -> None:
        """Wait until every partition is held by the worker the plan gives it, so that a test
        does not run while the workers are still handing partitions over."""
        session = self._session
        assert session is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            view = await session.registry.live_workers()
            settled = True
            for agent_type, info in (await session.registry.agent_types()).items():
                hosts = view.hosts(agent_type)
                if not hosts:
                    continue
                holders = await session.claims.holders(agent_type, int(info["partitions"]))
                live = [h if h in hosts else None for h in holders]
                settled = settled and None not in live and plan(agent_type, hosts, live) == live
            if settled:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("the cluster's partitions did not settle")

    async def register_factory(self, type: Any, agent_factory: Any, **kwargs: Any) -> Any:
        # A class can be named to another process; a closure cannot, and stays here.
        if not inspect.isclass(agent_factory):
            return await super().register_factory(type, agent_factory, **kwargs)
        return await self.mirror(_register_factory, (type, agent_factory), kwargs)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            try:
                await self._ask({"op": "close"})
            finally:
                await self._commands.aclose()


async def _pop(client: Redis, key: str, timeout: float | None = 60.0) -> str:
    """The next item of the list ``key``, waiting up to ``timeout`` seconds (None: forever).
    Short blocking pops keep each read well inside the client's socket timeout."""
    waited = 0.0
    while timeout is None or waited < timeout:
        popped = await client.blpop([key], timeout=1)
        if popped is not None:
            return str(popped[1])
        waited += 1.0
    raise TimeoutError(f"nothing arrived on {key} within {timeout:g} s")


async def _register_factory(runtime: Any, agent_type: Any, factory: Any, **kwargs: Any) -> Any:
    return await runtime.register_factory(agent_type, factory, **kwargs)


def dump_tasks_on_sigusr1(name: str) -> None:
    """``kill -USR1 <pid>`` writes the stack of every task of this process to
    ``$TMPDIR/agnext-cluster-<name>-<pid>.tasks``: what a worker that stopped answering awaits."""
    loop = asyncio.get_running_loop()

    def dump() -> None:
        path = Path(tempfile.gettempdir()) / f"agnext-cluster-{name}-{os.getpid()}.tasks"
        with open(path, "w") as out:
            for task in asyncio.all_tasks(loop):
                task.print_stack(file=out)

    loop.add_signal_handler(signal.SIGUSR1, dump)


async def _serve(amqp_url: str, redis_url: str, name: str) -> None:
    dump_tasks_on_sigusr1(name)
    control = Redis.from_url(redis_url, decode_responses=True)
    runtimes: dict[str, BrokerAgentRuntime] = {}
    try:
        while True:
            command = json.loads(await _pop(control, COMMANDS.format(name=name), None))
            if command["op"] == "exit":
                return
            namespace = command["namespace"]
            answer: dict[str, Any] = {"result": None}
            try:
                if command["op"] == "close":
                    runtime = runtimes.pop(namespace, None)
                    if runtime is not None:
                        await runtime.close()
                else:
                    runtime = runtimes.get(namespace)
                    if runtime is None:
                        runtime = BrokerAgentRuntime(
                            cluster_settings(amqp_url, redis_url, namespace, worker_id=name)
                        )
                        await runtime.start()
                        runtimes[namespace] = runtime
                    function = _decode({"function": command["function"]})
                    args = [_decode(a) for a in command["args"]]
                    kwargs = {k: _decode(v) for k, v in command["kwargs"].items()}
                    answer = {"result": _encode(await function(runtime, *args, **kwargs))}
            except Exception as e:
                answer = {"error": {"type": error_type_name(e), "message": error_message(e)}}
            await control.rpush(ANSWERS.format(id=command["answer"]), json.dumps(answer))
    finally:
        for runtime in runtimes.values():
            await runtime.close()
        await control.aclose()


def cluster_settings(
    amqp_url: str, redis_url: str, namespace: str, **changes: Any
) -> BrokerSettings:
    return BrokerSettings(
        amqp_url=amqp_url,
        redis_url=redis_url,
        namespace=namespace,
        partitions=4,
        heartbeat_interval=0.5,
        worker_expiry=2.0,
        rpc_timeout=30.0,
        drain_timeout=2.0,
        **changes,
    )


if __name__ == "__main__":
    asyncio.run(_serve(*sys.argv[1:4]))
