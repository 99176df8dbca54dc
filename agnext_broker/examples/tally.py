"""The tally example: work items fan out to one agent per key, and a reporter sums them up.

- The ``coordinator`` receives ``RunBatch`` by RPC, publishes ``WorkItem`` events to topic
  type ``work`` with the item's key as the topic source, then asks the reporter for a
  ``Report`` by RPC until every item is counted.
- A ``tallier`` agent per key (created on first use: the topic source is its key) adds each item
  to its running tally, keeps it in its saved state, and publishes ``ItemTallied``.
- The ``reporter`` collects ``ItemTallied`` events and answers ``GetReport``.

No LLM is involved; the same code runs on the standalone and the broker runtime.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from .. import (
    AgentId,
    AgentRuntime,
    MessageContext,
    RoutedAgent,
    TopicId,
    TypeSubscription,
    event,
    rpc,
)

logger = logging.getLogger(__name__)

WORK_TOPIC = "work"
RESULTS_TOPIC = "tally.results"


class WorkItem(BaseModel):
    item_id: int
    key: str
    amount: int


class ItemTallied(BaseModel):
    key: str
    item_id: int
    total: int
    count: int


class RunBatch(BaseModel):
    keys: list[str]
    items_per_key: int = Field(ge=1)
    timeout_s: float = 30.0


class GetReport(BaseModel):
    pass


class Report(BaseModel):
    items: int = 0
    totals: dict[str, int] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)


class Tallier(RoutedAgent):
    """Keeps the running total of the work items of one key."""

    def __init__(self) -> None:
        super().__init__("Adds up the work items of one key")
        self.total = 0
        self.count = 0

    @event
    async def on_work_item(self, item: WorkItem, ctx: MessageContext) -> None:
        self.total += item.amount
        self.count += 1
        logger.debug("item %d of %s tallied: total %d", item.item_id, item.key, self.total)
        tallied = ItemTallied(
            key=item.key, item_id=item.item_id, total=self.total, count=self.count
        )
        await self.publish_message(tallied, TopicId(RESULTS_TOPIC, "default"))

    async def save_state(self) -> Mapping[str, Any]:
        return {"total": self.total, "count": self.count}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.total = int(state.get("total", 0))
        self.count = int(state.get("count", 0))


class Reporter(RoutedAgent):
    """Collects what the talliers report and answers ``GetReport``."""

    def __init__(self) -> None:
        super().__init__("Collects tallies")
        self.report = Report()

    @event
    async def on_tallied(self, tallied: ItemTallied, ctx: MessageContext) -> None:
        self.report.items += 1
        self.report.totals[tallied.key] = tallied.total
        self.report.counts[tallied.key] = tallied.count

    @rpc
    async def on_get_report(self, request: GetReport, ctx: MessageContext) -> Report:
        return self.report.model_copy(deep=True)

    async def save_state(self) -> Mapping[str, Any]:
        return self.report.model_dump()

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.report = Report.model_validate(state)


class Coordinator(RoutedAgent):
    """Publishes a batch of work and waits, by RPC to the reporter, until it is all tallied."""

    def __init__(self) -> None:
        super().__init__("Publishes work and reports when it is done")

    async def save_state(self) -> Mapping[str, Any]:
        return {}  # stateless: everything it needs is in the request

    async def load_state(self, state: Mapping[str, Any]) -> None:
        pass

    @rpc
    async def on_run_batch(self, batch: RunBatch, ctx: MessageContext) -> Report:
        reporter = AgentId("reporter", "default")
        before = await self.send_message(GetReport(), reporter)
        item_id = 0
        for round_ in range(batch.items_per_key):
            for key in batch.keys:
                item_id += 1
                amount = round_ + 1
                await self.publish_message(
                    WorkItem(item_id=item_id, key=key, amount=amount), TopicId(WORK_TOPIC, key)
                )
        expected = before.items + item_id
        return await asyncio.wait_for(self._report_when_counted(expected), batch.timeout_s)

    async def _report_when_counted(self, expected: int) -> Report:
        reporter = AgentId("reporter", "default")
        while True:
            report: Report = await self.send_message(GetReport(), reporter)
            if report.items >= expected:
                return report
            await asyncio.sleep(0.005)


async def register(runtime: AgentRuntime) -> None:
    """Register the example's three agent types and their subscriptions on ``runtime``."""
    await Coordinator.register(runtime, "coordinator", Coordinator)
    await Tallier.register(runtime, "tallier", Tallier)
    await Reporter.register(runtime, "reporter", Reporter)
    await runtime.add_subscription(TypeSubscription(WORK_TOPIC, "tallier"))
    await runtime.add_subscription(TypeSubscription(RESULTS_TOPIC, "reporter"))
