"""Agents and messages shared by the conformance tests.

Everything here is module-level, and every message is a dataclass or a pydantic model, so that
the same tests can run against a runtime whose agents live in other worker processes: a worker
imports this module and registers the same agent types with the ``register_*`` functions.
Results are observed the way a remote client would: by RPC (``GetLog``, ``GetCount``, ...), or
through a :class:`Collector`, a ClosureAgent hosted by the test's own process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from agnext_broker import (
    AgentId,
    AgentInstantiationContext,
    AgentRuntime,
    AgentType,
    BaseAgent,
    CantHandleException,
    ClosureAgent,
    ClosureContext,
    DefaultTopicId,
    MessageContext,
    RoutedAgent,
    Subscription,
    TopicId,
    TypeSubscription,
    default_subscription,
    event,
    handles,
    message_handler,
    rpc,
    try_get_known_serializers_for_type,
    type_subscription,
    wire_name,
)

from .cluster import mirrored

COLLECTOR = "collector"
"""Agent type of the collector; agents report what they handled to ``collector/default``."""

LIVENESS_TIMEOUT = 5.0
"""Only keeps a broken runtime from hanging a test; never reached when the runtime works."""

# -- messages -----------------------------------------------------------------------------------


@dataclass
class Echo:
    text: str


@dataclass
class EchoReply:
    text: str
    agent: str
    sender: str | None
    is_rpc: bool
    topic: str | None


@dataclass
class Fail:
    kind: str  # "value", "key" or "custom"
    text: str


class AgentFailure(Exception):
    """A user-defined exception raised by a handler."""


@dataclass
class Ping:
    tag: str


@dataclass
class Marker:
    tag: str


@dataclass
class Note:
    text: str


@dataclass
class GetLog:
    pass


@dataclass
class Log:
    entries: list[str]


@dataclass
class Seen:
    """What an agent reports to the collector about a message it handled."""

    tag: str
    agent: str
    topic: str | None
    sender: str | None


@dataclass
class PublishPing:
    tag: str
    topic_type: str
    topic_source: str | None = None  # None: DefaultTopicId(topic_type), the handler's own key


class Add(BaseModel):
    amount: int


class GetCount(BaseModel):
    pass


class Count(BaseModel):
    value: int


@dataclass
class Relay:
    route: list[str]  # ids ("type/key") of the agents still to visit
    trail: list[str] = field(default_factory=list)


@dataclass
class Trail:
    stops: list[str]


@dataclass
class Probe:
    index: int
    wait_for: int = 1  # > 1: stay in the handler until that many probes are inside at once


@dataclass
class GetProbeStats:
    pass


@dataclass
class ProbeStats:
    max_concurrent: int
    order: list[int]


@dataclass
class FanOut:
    target: str
    count: int


@dataclass
class ProbeVia:
    target: str
    index: int
    wait_for: int = 1


@dataclass
class Block:
    tag: str


@dataclass
class WhoAmI:
    pass


@dataclass
class Identity:
    agent: str
    created_as: str


@wire_name("conformance.Renamed")
@dataclass
class Renamed:
    text: str


@wire_name("conformance.Shared")
@dataclass
class SharedFirst:
    value: int


@wire_name("conformance.Shared")
@dataclass
class SharedSecond:
    value: str


class PlainMessage:
    """Neither a dataclass nor a pydantic model: it cannot go on the wire."""

    def __init__(self, text: str) -> None:
        self.text = text


def _str(value: object | None) -> str | None:
    return None if value is None else str(value)


# -- the collector (hosted by the test process) -------------------------------------------------


@dataclass
class Collected:
    agent: AgentId
    message: Any
    topic: TopicId | None
    sender: AgentId | None
    is_rpc: bool


# Well inside pytest's own timeout, so that a message that never arrives says what did.
TAKE_TIMEOUT = 60.0


class Collector:
    """What the collector agents of one type received, in arrival order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Collected] = asyncio.Queue()

    def put(self, item: Collected) -> None:
        self._queue.put_nowait(item)

    async def take(self, count: int, timeout: float = TAKE_TIMEOUT) -> list[Collected]:
        """Wait for the next ``count`` messages, for at most ``timeout`` seconds."""
        taken: list[Collected] = []
        try:
            async with asyncio.timeout(timeout):
                while len(taken) < count:
                    taken.append(await self._queue.get())
        except TimeoutError:
            raise AssertionError(
                f"{len(taken)} of {count} messages arrived within {timeout:g} s: {taken}"
            ) from None
        return taken

    def pending(self) -> int:
        return self._queue.qsize()


async def register_collector(
    runtime: AgentRuntime, *topic_types: str, agent_type: str = COLLECTOR
) -> Collector:
    """A ClosureAgent type that collects Seen, Ping and Marker, subscribed to ``topic_types``."""
    collector = Collector()

    async def collect(
        agent: ClosureContext, message: Seen | Ping | Marker, ctx: MessageContext
    ) -> None:
        collector.put(Collected(agent.id, message, ctx.topic_id, ctx.sender, ctx.is_rpc))

    def subscriptions() -> list[Subscription]:
        return [TypeSubscription(topic_type, agent_type) for topic_type in topic_types]

    await ClosureAgent.register_closure(
        runtime, agent_type, collect, subscriptions=subscriptions, unknown_type_policy="error"
    )
    return collector


async def report(agent: BaseAgent, tag: str, ctx: MessageContext) -> None:
    seen = Seen(tag, str(agent.id), _str(ctx.topic_id), _str(ctx.sender))
    await agent.send_message(seen, AgentId(COLLECTOR, "default"))


# -- agents -------------------------------------------------------------------------------------


class SimpleAgent(RoutedAgent):
    """A RoutedAgent with a description and an empty state."""

    def __init__(self, description: str = "A conformance test agent.") -> None:
        super().__init__(description)

    async def save_state(self) -> Mapping[str, Any]:
        return {}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        pass


class EchoAgent(SimpleAgent):
    def __init__(self) -> None:
        super().__init__("Echoes text back with what it knows of the message.")

    # The parameters are deliberately not named (message, ctx): only their positions matter.
    @message_handler
    async def reply(self, incoming: Echo, context: MessageContext) -> EchoReply:
        return EchoReply(
            incoming.text,
            str(self.id),
            _str(context.sender),
            context.is_rpc,
            _str(context.topic_id),
        )

    @message_handler
    async def fail(self, request: Fail, ctx: MessageContext) -> None:
        if request.kind == "value":
            raise ValueError(request.text)
        if request.kind == "key":
            raise KeyError(request.text)
        raise AgentFailure(request.text)


class LoggingAgent(SimpleAgent):
    """Logs what it handles, answers GetLog, and reports the events it handles."""

    def __init__(self) -> None:
        super().__init__("Logs what it handles.")
        self.log: list[str] = []

    async def record(self, entry: str, tag: str, ctx: MessageContext) -> None:
        self.log.append(entry)
        if not ctx.is_rpc:
            await report(self, tag, ctx)

    @message_handler
    async def on_marker(self, marker: Marker, ctx: MessageContext) -> None:
        await self.record(f"marker:{marker.tag}", marker.tag, ctx)

    @message_handler
    async def on_note(self, note: Note, ctx: MessageContext) -> None:
        self.log.append(f"note:{note.text}")

    @message_handler
    async def on_get_log(self, request: GetLog, ctx: MessageContext) -> Log:
        return Log(list(self.log))

    async def save_state(self) -> Mapping[str, Any]:
        return {"log": list(self.log)}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.log = list(state["log"])


class Reporter(LoggingAgent):
    """Handles Ping events (not RPCs), and publishes Ping on request."""

    @event
    async def on_ping(self, ping: Ping, ctx: MessageContext) -> None:
        await self.record(f"event:{ping.tag}", ping.tag, ctx)

    @message_handler
    async def on_publish_ping(self, request: PublishPing, ctx: MessageContext) -> None:
        if request.topic_source is None:
            topic: TopicId = DefaultTopicId(request.topic_type)
        else:
            topic = TopicId(request.topic_type, request.topic_source)
        await self.publish_message(Ping(request.tag), topic)
        for _ in range(50):  # stay in this turn a while: receivers must not run inside it
            await asyncio.sleep(0)
        self.log.append(f"published:{request.tag}")


@default_subscription
class DefaultReporter(Reporter):
    pass


@type_subscription("team")
class TeamReporter(Reporter):
    pass


class RpcReporter(Reporter):
    """A Reporter that also answers Ping sent as an RPC."""

    @rpc
    async def on_ping_rpc(self, ping: Ping, ctx: MessageContext) -> str:
        self.log.append(f"rpc:{ping.tag}")
        return f"rpc:{ping.tag}"


class RpcOnlyAgent(LoggingAgent):
    @rpc
    async def on_ping(self, ping: Ping, ctx: MessageContext) -> str:
        self.log.append(f"rpc:{ping.tag}")
        return f"rpc:{ping.tag}"


class CallBackAgent(LoggingAgent):
    """On a Ping event, sends a Note back to the publisher, then reports."""

    @event
    async def on_ping(self, ping: Ping, ctx: MessageContext) -> None:
        assert ctx.sender is not None
        await self.send_message(Note(f"from {self.id}"), ctx.sender)
        await self.record(f"event:{ping.tag}", ping.tag, ctx)


class UnhandledLogger(LoggingAgent):
    async def on_unhandled_message(self, message: Any, ctx: MessageContext) -> None:
        kind = "rpc" if ctx.is_rpc else "event"
        self.log.append(f"unhandled:{type(message).__name__}:{kind}")


class MatchAgent(SimpleAgent):
    """Handlers of one type with match=; declared out of alphabetical order on purpose."""

    @message_handler(match=lambda ping, ctx: True)
    async def zulu(self, ping: Ping, ctx: MessageContext) -> str:
        return "zulu"

    @message_handler(match=lambda ping, ctx: ping.tag.startswith("a"))
    async def charlie(self, ping: Ping, ctx: MessageContext) -> str:
        return "charlie"

    @message_handler(match=lambda ping, ctx: ping.tag.startswith("a"))
    async def alpha(self, ping: Ping, ctx: MessageContext) -> str:
        return "alpha"

    @message_handler(match=lambda ping, ctx: ping.tag.startswith("b"))
    async def bravo(self, ping: Ping, ctx: MessageContext) -> str:
        return "bravo"

    @message_handler(match=lambda marker, ctx: marker.tag == "yes")
    async def only_yes(self, marker: Marker, ctx: MessageContext) -> str:
        return "yes"


class UnionAgent(SimpleAgent):
    @message_handler
    async def either(self, message: Ping | Marker, ctx: MessageContext) -> str:
        return f"{type(message).__name__}:{message.tag}"


class ReturnCheckAgent(SimpleAgent):
    @message_handler
    async def strict_reply(self, ping: Ping, ctx: MessageContext) -> Count:
        return ping.tag  # type: ignore[return-value]  # deliberately not a Count

    @message_handler(strict=False)
    async def lenient_reply(self, marker: Marker, ctx: MessageContext) -> Count:
        return marker.tag  # type: ignore[return-value]  # deliberately not a Count

    @message_handler
    async def union_reply(self, echo: Echo, ctx: MessageContext) -> Count | Log:
        return Count(value=len(echo.text)) if echo.text else Log([])


@handles(Ping)
class RefusingAgent(BaseAgent):
    """A BaseAgent that handles nothing."""

    def __init__(self) -> None:
        super().__init__("Refuses every message.")

    async def on_message_impl(self, message: Any, ctx: MessageContext) -> Any:
        raise CantHandleException(f"{self.id} handles nothing")

    async def save_state(self) -> Mapping[str, Any]:
        return {}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        pass


class CounterAgent(SimpleAgent):
    def __init__(self) -> None:
        super().__init__("Counts.")
        self.count = 0

    @message_handler
    async def add(self, request: Add, ctx: MessageContext) -> Count:
        self.count += request.amount
        return Count(value=self.count)

    @message_handler
    async def get_count(self, request: GetCount, ctx: MessageContext) -> Count:
        return Count(value=self.count)

    async def save_state(self) -> Mapping[str, Any]:
        return {"count": self.count}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.count = int(state["count"])


class TurnProbe(SimpleAgent):
    """Records the order of Probes and how many it handled at once (turn-based)."""

    def __init__(self) -> None:
        super().__init__("Measures how many probes it handles at once.")
        self._inside = 0
        self._max = 0
        self._order: list[int] = []
        self._all_in = asyncio.Event()

    @message_handler
    async def on_probe(self, probe: Probe, ctx: MessageContext) -> None:
        self._order.append(probe.index)
        self._inside += 1
        self._max = max(self._max, self._inside)
        if self._inside >= probe.wait_for:
            self._all_in.set()
        try:
            if probe.wait_for > 1:
                try:
                    await asyncio.wait_for(self._all_in.wait(), LIVENESS_TIMEOUT)
                except TimeoutError:
                    self._all_in.set()  # the test fails on max_concurrent; do not wait again
            for _ in range(20):  # let other messages in, if the runtime would
                await asyncio.sleep(0)
        finally:
            self._inside -= 1
        if not ctx.is_rpc:
            await report(self, str(probe.index), ctx)

    @message_handler
    async def stats(self, request: GetProbeStats, ctx: MessageContext) -> ProbeStats:
        return ProbeStats(self._max, list(self._order))


class ConcurrentProbe(TurnProbe):
    concurrent_handling = True


class Fanner(LoggingAgent):
    """Sends Probes to another agent: several at once (FanOut), or one (ProbeVia)."""

    @message_handler
    async def fan_out(self, request: FanOut, ctx: MessageContext) -> None:
        target = AgentId.from_str(request.target)
        await asyncio.gather(*(self.send_message(Probe(i), target) for i in range(request.count)))

    @message_handler
    async def via(self, request: ProbeVia, ctx: MessageContext) -> None:
        probe = Probe(request.index, request.wait_for)
        await self.send_message(probe, AgentId.from_str(request.target))
        await self.record(f"via:{request.index}", str(request.index), ctx)


class CycleAgent(SimpleAgent):
    """Passes a Relay on along its route; the last stop returns the trail."""

    @message_handler
    async def relay(self, request: Relay, ctx: MessageContext) -> Trail:
        trail = [*request.trail, str(self.id)]
        if not request.route:
            return Trail(trail)
        next_stop, *rest = request.route
        reply: Trail = await self.send_message(Relay(rest, trail), AgentId.from_str(next_stop))
        return reply


class Blocker(LoggingAgent):
    """Handles Block until the message's cancellation token is cancelled."""

    @message_handler
    async def block(self, request: Block, ctx: MessageContext) -> None:
        self.log.append(f"entered:{request.tag}")
        await report(self, request.tag, ctx)  # tells the test the handler is running
        released = ctx.cancellation_token.link_future(asyncio.get_running_loop().create_future())
        try:
            await released
        except asyncio.CancelledError:
            self.log.append(f"cancelled:{request.tag}")
            raise


class IdentityAgent(SimpleAgent):
    def __init__(self) -> None:
        self.created_as = AgentInstantiationContext.current_agent_id()
        self.created_runtime = AgentInstantiationContext.current_runtime()
        super().__init__("Knows the id it was created for.")

    @message_handler
    async def who(self, request: WhoAmI, ctx: MessageContext) -> Identity:
        return Identity(str(self.id), str(self.created_as))


class RenamedAgent(SimpleAgent):
    @message_handler
    async def shout(self, message: Renamed, ctx: MessageContext) -> Renamed:
        return Renamed(message.text.upper())


class FirstSharedAgent(SimpleAgent):
    @message_handler
    async def on_first(self, message: SharedFirst, ctx: MessageContext) -> None:
        pass


class SecondSharedAgent(SimpleAgent):
    @message_handler
    async def on_second(self, message: SharedSecond, ctx: MessageContext) -> None:
        pass


class PlainHandlerAgent(SimpleAgent):
    @message_handler
    async def on_plain(self, message: PlainMessage, ctx: MessageContext) -> None:
        pass


# -- registration -------------------------------------------------------------------------------


@mirrored
async def register_agent(
    runtime: AgentRuntime, agent_class: type[SimpleAgent] | type[BaseAgent], agent_type: str
) -> AgentType:
    """Register ``agent_class`` (its constructor takes no argument) as ``agent_type``."""
    return await agent_class.register(runtime, agent_type, agent_class)


async def make_announced_echo() -> EchoAgent:
    """An async factory that tells the collector which agent it created."""
    agent = EchoAgent()
    created = AgentInstantiationContext.current_agent_id()
    runtime = AgentInstantiationContext.current_runtime()
    await runtime.send_message(
        Seen("created", str(created), None, None), AgentId(COLLECTOR, "default")
    )
    return agent


@mirrored
async def register_announced_echo(runtime: AgentRuntime, agent_type: str = "announced") -> None:
    await EchoAgent.register(runtime, agent_type, make_announced_echo)


@mirrored
async def register_mismatched(runtime: AgentRuntime, agent_type: str = "mismatched") -> None:
    """A factory that makes EchoAgents, registered as if it made CounterAgents."""
    await runtime.register_factory(agent_type, EchoAgent, expected_class=CounterAgent)


async def forward_ping(agent: ClosureContext, ping: Ping, ctx: MessageContext) -> None:
    """Asks echo/<own key> to echo the tag, and publishes the reply to forwarded/<own key>."""
    reply: EchoReply = await agent.send_message(Echo(ping.tag), AgentId("echo", agent.id.key))
    seen = Seen(reply.text, reply.agent, reply.topic, reply.sender)
    await agent.publish_message(seen, TopicId("forwarded", agent.id.key))


def forwarder_subscriptions() -> list[Subscription]:
    return [TypeSubscription("to_forward", "forwarder")]


@mirrored
async def register_forwarder(runtime: AgentRuntime) -> None:
    """ClosureAgent ``forwarder`` on topic ``to_forward``, and the ``echo`` it asks."""
    await register_agent(runtime, EchoAgent, "echo")
    await ClosureAgent.register_closure(
        runtime,
        "forwarder",
        forward_ping,
        subscriptions=forwarder_subscriptions,
        unknown_type_policy="error",
    )


async def double(agent: ClosureContext, value: Count, ctx: MessageContext) -> Count:
    return Count(value=value.value * 2)


@mirrored
async def register_doubler(runtime: AgentRuntime, agent_type: str = "doubler") -> AgentType:
    return await ClosureAgent.register_closure(
        runtime, agent_type, double, unknown_type_policy="error"
    )


@mirrored
async def register_probe_factory(
    runtime: AgentRuntime, agent_class: type[TurnProbe], agent_type: str
) -> None:
    """Register a probe with ``runtime.register_factory`` alone (no ``expected_class``), as
    autogen-core code often does."""
    for message_type in (Probe, GetProbeStats, ProbeStats, Seen):
        runtime.add_message_serializer(try_get_known_serializers_for_type(message_type))
    await runtime.register_factory(agent_type, agent_class)
