"""Agents' persistent state in Redis: one readable JSON document per agent.

``<ns>:agent:{<type>/<key>}`` holds::

    {"version": 7, "state": {...what save_state returned...},
     "applied": ["<message id>", ...],            # the last N applied message ids, oldest first
     "responses": {"<message id>": {...}}}          # stored RPC responses of those ids

Every write is conditional on the version read (a Lua script compares and sets in one step), so
a worker that lost an agent to another cannot overwrite the newer state. Writes issued while
earlier ones are on their way go to Redis together in one pipeline (each still its own script
call with its own outcome): under load, a worker's many agents save in few round trips.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from ...base import AgentId
from ._names import Names

# Returns -1 when written, else the version found. The document is written with "version"
# first, so reading it needs no JSON decoding.
_SAVE_IF_VERSION = """
local current = redis.call('GET', KEYS[1])
local version = 0
if current then
  version = tonumber(string.match(current, '^{"version":(%d+)'))
  if not version then version = cjson.decode(current)['version'] or 0 end
end
if version ~= tonumber(ARGV[1]) then
  return version
end
redis.call('SET', KEYS[1], ARGV[2])
return -1
"""


@dataclass
class StoredResponse:
    """An RPC response kept with the message id that produced it."""

    type: str
    content_type: str
    data: str
    error_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "content_type": self.content_type,
            "data": self.data,
        }
        if self.error_type is not None:
            out["error_type"] = self.error_type
        return out

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> StoredResponse:
        return cls(value["type"], value["content_type"], value["data"], value.get("error_type"))


@dataclass
class AgentRecord:
    """What Redis holds for one agent."""

    version: int = 0
    state: dict[str, Any] | None = None
    applied: list[str] = field(default_factory=list)
    responses: dict[str, StoredResponse] = field(default_factory=dict)

    def has_applied(self, message_id: str) -> bool:
        return message_id in self.applied

    def next(
        self,
        state: dict[str, Any] | None,
        message_id: str,
        response: StoredResponse | None,
        keep: int,
        keep_responses: int,
    ) -> AgentRecord:
        """The record after applying ``message_id``: version + 1, the id remembered (the last
        ``keep`` ids), its response too (the last ``keep_responses`` responses)."""
        applied = [*self.applied, message_id][-keep:]
        responses = dict(self.responses)
        if response is not None:
            responses[message_id] = response
        kept = set(applied)
        recent = [k for k in responses if k in kept][-keep_responses:]
        return AgentRecord(self.version + 1, state, applied, {k: responses[k] for k in recent})

    def to_json(self) -> str:
        document = {
            "version": self.version,
            "state": self.state,
            "applied": self.applied,
            "responses": {k: v.to_json() for k, v in self.responses.items()},
        }
        return json.dumps(document, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> AgentRecord:
        document = json.loads(text)
        return cls(
            version=int(document.get("version", 0)),
            state=document.get("state"),
            applied=list(document.get("applied", [])),
            responses={
                k: StoredResponse.from_json(v) for k, v in document.get("responses", {}).items()
            },
        )


class StateConflict(Exception):
    """Another writer changed the agent's state since it was read."""


class StateStore:
    def __init__(self, redis: Redis, names: Names) -> None:
        self._redis = redis
        self._names = names
        self._save = redis.register_script(_SAVE_IF_VERSION)
        self._queued: list[tuple[str, int, str, asyncio.Future[Any]]] = []
        self._writing = False  # a write is on its way: later ones queue for one pipeline
        self._writer: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly

    async def load(self, agent_id: AgentId) -> AgentRecord:
        text = await self._redis.get(self._names.state_key(agent_id))
        return AgentRecord() if text is None else AgentRecord.from_json(text)

    async def all_states(self) -> dict[str, dict[str, Any]]:
        """The saved state of every agent of the namespace, keyed ``"type/key"``."""
        prefix = self._names.state_key(AgentId("x", "")).split("{")[0]
        states: dict[str, dict[str, Any]] = {}
        async for key in self._redis.scan_iter(match=f"{prefix}{{*}}", count=500):
            text = await self._redis.get(key)
            if text is not None:
                agent = str(key)[len(prefix) + 1 : -1]
                states[agent] = AgentRecord.from_json(text).state or {}
        return states

    async def save(self, agent_id: AgentId, expected_version: int, record: AgentRecord) -> None:
        """Write ``record`` if the stored version is still ``expected_version``.

        Raises:
            StateConflict: the stored version differs.
            redis.exceptions.RedisError: Redis did not take the write.
        """
        write = (self._names.state_key(agent_id), expected_version, record.to_json())
        if self._writing:  # behind writes on their way: goes with the next batch
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._queued.append((*write, future))
            found = await future
        else:
            self._writing = True
            try:
                found = await self._save(keys=[write[0]], args=[write[1], write[2]])
            finally:
                self._write_queued_in_background()
        if int(found) != -1:
            raise StateConflict(
                f"state of {agent_id} is at version {found}, not {expected_version}"
            )

    def _write_queued_in_background(self) -> None:
        if self._queued:
            self._writer = asyncio.create_task(self._write_queued())
        else:
            self._writing = False

    async def _write_queued(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    results = await self._write(batch)
                except Exception as e:
                    results = [e] * len(batch)
                for (*_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue  # its caller stopped waiting
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._writing = False

    async def _write(
        self, batch: list[tuple[str, int, str, asyncio.Future[Any]]], *, first: bool = True
    ) -> list[Any]:
        pipeline = self._redis.pipeline(transaction=False)
        for key, version, document, _ in batch:
            pipeline.evalsha(self._save.sha, 1, key, version, document)
        results: list[Any] = await pipeline.execute(raise_on_error=False)
        missed = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if first and missed:
            # Redis restarted, or its script cache was flushed: load the script and write again
            # what did not run (the others ran).
            await self._redis.script_load(_SAVE_IF_VERSION)
            again = await self._write([batch[i] for i in missed], first=False)
            for i, result in zip(missed, again, strict=True):
                results[i] = result
        return results
