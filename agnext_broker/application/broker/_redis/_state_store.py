"""Agents' persistent state in Redis, and the messages each agent applied.

Three keys per agent, under the agent's hash tag (so one script writes them together):

- ``<ns>:agent:{<type>/<key>}``: ``{"version": 7, "state": {...what save_state returned...}}``;
- ``<ns>:applied:{<type>/<key>}``: sorted set of the messages applied, each as the JSON array
  ``[source, id]`` (the CloudEvents deduplication key), scored by when (microseconds on Redis'
  clock); kept for the dedup window, at most ``applied_ids_kept`` of them;
- ``<ns>:responses:{<type>/<key>}``: hash of the stored responses of applied requests, kept while
  their message is among the last ``responses_kept`` applied.

Every write is conditional on the version read (a Lua script compares and sets in one step), so
a worker that lost an agent to another cannot overwrite the newer state; the applied message and
its response are recorded in the same step. Writes issued while earlier ones are on their way go
to Redis together in one pipeline (each still its own script call with its own outcome): under
load, a worker's many agents save in few round trips.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from ....base import AgentId, ServiceUnavailableError
from .._names import Names
from .._tasks import cancel_and_wait
from ._errors import redis_errors
from ._text import text

# KEYS: state, applied; ARGV: window (us), at most this many ids
# Returns {state document or false, Redis' time (us), {id, score, id, score...} newest first}.
_LOAD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[2], '+inf', now - tonumber(ARGV[1]),
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
return {redis.call('GET', KEYS[1]), now, ids}
"""

# KEYS: state, applied, responses
# ARGV: expected version ('' = the agent keeps no state document), the new document, the
# applied message's key, its response ('' = none), window (us), ids kept, responses kept.
# Returns -1 when written, else the version found. The document is written with "version"
# first, so reading it needs no JSON decoding.
_COMMIT = """
if ARGV[1] ~= '' then
  local current = redis.call('GET', KEYS[1])
  local version = 0
  if current then
    version = tonumber(string.match(current, '^{"version":(%d+)'))
    if not version then version = cjson.decode(current)['version'] or 0 end
  end
  if version ~= tonumber(ARGV[1]) then return version end
  redis.call('SET', KEYS[1], ARGV[2])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if last[2] and tonumber(last[2]) >= now then now = tonumber(last[2]) + 1 end
redis.call('ZADD', KEYS[2], now, ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[3], ARGV[4]) end
local window = tonumber(ARGV[5])
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - window, 'LIMIT', 0, 100)
if #old > 0 then
  redis.call('ZREM', KEYS[2], unpack(old))
  redis.call('HDEL', KEYS[3], unpack(old))
end
local n = redis.call('ZCARD', KEYS[2])
local keep = tonumber(ARGV[6])
if n > keep then
  local over = redis.call('ZRANGE', KEYS[2], 0, math.min(n - keep, 1000) - 1)
  redis.call('ZREM', KEYS[2], unpack(over))
  redis.call('HDEL', KEYS[3], unpack(over))
  n = n - #over
end
local keep_responses = tonumber(ARGV[7])
if n > keep_responses then
  local gone = redis.call('ZRANGE', KEYS[2], n - keep_responses - 1, n - keep_responses - 1)
  if #gone > 0 then redis.call('HDEL', KEYS[3], gone[1]) end
end
local ttl = math.ceil(window / 1000)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return -1
"""


def dedup_key(source: str, message_id: str) -> str:
    """How an applied message is recorded: its CloudEvents ``[source, id]``, as JSON."""
    return json.dumps([source, message_id], separators=(",", ":"))


@dataclass
class StoredResponse:
    """An RPC response kept with the message that produced it."""

    type: str
    content_type: str
    data: str
    error_type: str | None = None

    def to_json(self) -> str:
        out: dict[str, Any] = {
            "type": self.type,
            "content_type": self.content_type,
            "data": self.data,
        }
        if self.error_type is not None:
            out["error_type"] = self.error_type
        return json.dumps(out, separators=(",", ":"))

    @classmethod
    def from_json(cls, document: str) -> StoredResponse:
        value = json.loads(document)
        return cls(value["type"], value["content_type"], value["data"], value.get("error_type"))


@dataclass(frozen=True)
class Retention:
    """How long, and how many, applied messages and responses an agent keeps."""

    window: float  # seconds
    ids: int
    responses: int


@dataclass
class AgentRecord:
    """What this worker knows of an active agent's record: its state's version and state, and
    the messages it applied within the window (by key, with when, on ``time.monotonic()``)."""

    version: int = 0
    state: dict[str, Any] | None = None
    applied: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def has_applied(self, key: str, retention: Retention) -> bool:
        applied_at = self.applied.get(key)
        return applied_at is not None and time.monotonic() - applied_at < retention.window

    def applying(self, key: str, state: dict[str, Any] | None, retention: Retention) -> AgentRecord:
        """The record once ``key`` is applied with ``state`` (``None``: keeps its state)."""
        applied = OrderedDict(self.applied)
        applied[key] = time.monotonic()
        while len(applied) > retention.ids:
            applied.popitem(last=False)
        kept = state if state is not None else self.state
        return AgentRecord(self.version + 1, kept, applied)

    def document(self) -> str:
        return json.dumps({"version": self.version, "state": self.state}, separators=(",", ":"))


class StateConflict(Exception):
    """Another writer changed the agent's state since it was read."""


@dataclass(frozen=True)
class _Write:
    keys: Sequence[str]
    args: Sequence[Any]


class StateStore:
    def __init__(self, redis: Redis, names: Names, retention: Retention, server: str) -> None:
        self._redis = redis
        self._names = names
        self._retention = retention
        self._server = server
        self._load = redis.register_script(_LOAD)
        self._commit = redis.register_script(_COMMIT)
        self._queued: list[tuple[_Write, asyncio.Future[Any]]] = []
        self._writing = False  # a write is on its way: later ones queue for one pipeline
        self._writer: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly

    @property
    def retention(self) -> Retention:
        return self._retention

    async def close(self) -> None:
        """End the writes still queued (the runtime stops, its Redis client closes next): they
        fail, and their messages go back to their queues."""
        await cancel_and_wait([self._writer])
        self._writer = None
        queued, self._queued = self._queued, []
        for _, future in queued:
            if not future.done():
                future.set_exception(
                    ServiceUnavailableError("the runtime stopped before the state was written")
                )

    def _keys(self, agent_id: AgentId) -> list[str]:
        names = self._names
        return [
            names.state_key(agent_id),
            names.applied_key(agent_id),
            names.responses_key(agent_id),
        ]

    async def load(self, agent_id: AgentId) -> AgentRecord:
        """The agent's saved state and the messages it applied within the window."""
        args = [int(self._retention.window * 1_000_000), self._retention.ids]
        with redis_errors(self._server):
            document, now_us, flat = await self._load(keys=self._keys(agent_id)[:2], args=args)
        record = AgentRecord()
        if document is not None:
            value = json.loads(document)  # json takes bytes and str
            record.version = int(value.get("version", 0))
            record.state = value.get("state")
        local_now = time.monotonic()
        pairs = list(zip(flat[0::2], flat[1::2], strict=True))
        for key, score in reversed(pairs):  # oldest first
            record.applied[text(key)] = local_now - (int(now_us) - float(score)) / 1_000_000
        return record

    async def response(self, agent_id: AgentId, key: str) -> StoredResponse | None:
        """The stored response of an applied request, if it is still kept."""
        with redis_errors(self._server):
            stored = await self._redis.hget(self._names.responses_key(agent_id), key)
        return None if stored is None else StoredResponse.from_json(text(stored))

    async def all_states(self) -> dict[str, dict[str, Any]]:
        """The saved state of every agent of the namespace, keyed ``"type/key"``."""
        prefix_length = len(self._names.state_key_pattern) - len("{*}")
        states: dict[str, dict[str, Any]] = {}
        with redis_errors(self._server):
            async for key in self._redis.scan_iter(match=self._names.state_key_pattern, count=500):
                document = await self._redis.get(key)
                if document is not None:
                    agent = text(key)[prefix_length + 1 : -1]
                    states[agent] = json.loads(document).get("state") or {}
        return states

    async def commit(
        self,
        agent_id: AgentId,
        record: AgentRecord,
        updated: AgentRecord | None,
        key: str,
        response: StoredResponse | None,
    ) -> None:
        """Record ``key`` as applied with its response and, for an agent that keeps state, the
        ``updated`` record's state, if the stored version is still ``record.version``.

        Raises:
            StateConflict: the stored version differs.
            ServiceUnavailableError: Redis did not take the write.
        """
        retention = self._retention
        expected, document = ("", "") if updated is None else (record.version, updated.document())
        write = _Write(
            self._keys(agent_id),
            [
                expected,
                document,
                key,
                "" if response is None else response.to_json(),
                int(retention.window * 1_000_000),
                retention.ids,
                retention.responses,
            ],
        )
        with redis_errors(self._server):
            found = await self._write_one(write)
        if int(found) != -1:
            raise StateConflict(f"state of {agent_id} is at version {found}, not {record.version}")

    async def _write_one(self, write: _Write) -> Any:
        if self._writing:  # behind writes on their way: goes with the next batch
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._queued.append((write, future))
            return await future
        self._writing = True
        try:
            return await self._commit(keys=write.keys, args=write.args)
        finally:
            self._write_queued_in_background()

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
                    results = await self._write_batch([write for write, _ in batch])
                except Exception as e:
                    results = [e] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue  # its caller stopped waiting
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._writing = False

    async def _write_batch(self, batch: list[_Write], *, first: bool = True) -> list[Any]:
        pipeline = self._redis.pipeline(transaction=False)
        for write in batch:
            pipeline.evalsha(self._commit.sha, len(write.keys), *write.keys, *write.args)
        results: list[Any] = await pipeline.execute(raise_on_error=False)
        missed = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if first and missed:
            # Redis restarted, or its script cache was flushed: load the script and write again
            # what did not run (the others ran).
            await self._redis.script_load(_COMMIT)
            again = await self._write_batch([batch[i] for i in missed], first=False)
            for i, result in zip(missed, again, strict=True):
                results[i] = result
        return results
