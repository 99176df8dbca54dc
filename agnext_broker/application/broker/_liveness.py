"""Heartbeats, in a task of their own, and the registry view each one brings back.

Nothing else runs in the heartbeat's task: a turn of two minutes, a partition hand-over that
waits for its turns, a drain, none of them delays a heartbeat, so a busy worker never looks
dead. The task keeps beating until :meth:`Liveness.stop`, which the runtime calls only after its
partitions are released.

The view (Redis' time, the live workers and what they host, the subscriptions' version) goes to
``on_view`` after every heartbeat. Whether the registry can be trusted to say that *nobody* hosts
a type is a separate question: after Redis could not be read, every worker's heartbeat may have
expired meanwhile, so absence means something only once the registry has been readable for a
whole ``worker_expiry`` again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ...base import ServiceUnavailableError
from ._redis import Registry, RegistryView
from ._settings import BrokerSettings
from ._tasks import cancel_and_wait

logger = logging.getLogger("agnext_broker")


class Liveness:
    def __init__(
        self,
        registry: Registry,
        settings: BrokerSettings,
        hosted_types: Callable[[], list[str]],
        started_at: float,
        on_view: Callable[[RegistryView], None],
        on_reconnect: Callable[[], None] = lambda: None,
    ) -> None:
        self._registry = registry
        self._on_reconnect = on_reconnect
        self._settings = settings
        self._hosted_types = hosted_types
        self._started_at = started_at
        self._on_view = on_view
        self._task: asyncio.Task[None] | None = None
        self.view: RegistryView | None = None
        # Loop time of the first successful read after a failure (-inf: no failure seen yet).
        self._readable_since: float | None = float("-inf")
        self._failing = False
        self.draining = False  # announced in every heartbeat from now on

    @property
    def healthy(self) -> bool:
        """Whether the last heartbeat reached Redis."""
        return self.view is not None and not self._failing

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def registry_failed(self) -> None:
        """Redis could not be read."""
        self._readable_since = None

    def trusts_absence(self) -> bool:
        """Whether a type missing from the view is really hosted by no live worker."""
        since = self._readable_since
        if since is None:
            return False
        elapsed = asyncio.get_running_loop().time() - since
        return elapsed >= self._settings.worker_expiry

    async def beat(self) -> RegistryView:
        """One heartbeat: record this worker and return the live workers.

        Raises:
            ServiceUnavailableError: Redis could not be reached.
        """
        try:
            view = await self._registry.heartbeat(
                self._settings.worker_id,
                self._hosted_types(),
                self._started_at,
                self._settings.worker_expiry,
                draining=self.draining,
            )
        except ServiceUnavailableError:
            self.registry_failed()
            raise
        if self._readable_since is None:
            self._readable_since = asyncio.get_running_loop().time()
        self.view = view
        self._on_view(view)
        return view

    async def fresh_view(self) -> RegistryView:
        """The live workers now, read without a heartbeat (a worker may have joined since the
        last one).

        Raises:
            ServiceUnavailableError: Redis could not be reached.
        """
        try:
            view = await self._registry.live_workers()
        except ServiceUnavailableError:
            self.registry_failed()
            raise
        if self._readable_since is None:
            self._readable_since = asyncio.get_running_loop().time()
        return view

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="agnext-heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait([task])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._settings.heartbeat_interval
        while True:
            began = loop.time()
            try:
                await self.beat()
                if self._failing:
                    logger.info("heartbeat recorded again: Redis is back")
                    self._failing = False
                    self._on_reconnect()
            except ServiceUnavailableError as e:
                if not self._failing:
                    logger.warning("heartbeat failed, trying again every %.1f s: %s", interval, e)
                    self._failing = True
            except Exception:
                logger.exception("heartbeat failed")
            await asyncio.sleep(max(0.0, interval - (loop.time() - began)))
