"""Behaviour that only makes sense in one process: agent objects, interventions, exceptions of
event handlers, tracing, and the start/stop lifecycle of SingleThreadedAgentRuntime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agnext_broker import (
    AgentId,
    DefaultInterventionHandler,
    DropMessage,
    MessageContext,
    MessageDroppedException,
    SingleThreadedAgentRuntime,
    StandaloneAgentRuntime,
    TopicId,
    TypeSubscription,
    UndeliverableException,
)

from .agents import (
    AgentFailure,
    CounterAgent,
    CycleAgent,
    Echo,
    EchoAgent,
    EchoReply,
    Fail,
    GetLog,
    IdentityAgent,
    Log,
    LoggingAgent,
    Marker,
    Ping,
    Relay,
    Reporter,
    Trail,
    WhoAmI,
    register_agent,
    register_collector,
)

MakeRuntime = Callable[..., SingleThreadedAgentRuntime]


@pytest.fixture
async def make_runtime() -> AsyncIterator[MakeRuntime]:
    created: list[SingleThreadedAgentRuntime] = []

    def make(*, start: bool = True, **kwargs: Any) -> SingleThreadedAgentRuntime:
        runtime = SingleThreadedAgentRuntime(**kwargs)
        if start:
            runtime.start()
        created.append(runtime)
        return runtime

    yield make
    for runtime in created:
        await runtime.close()


async def yield_a_while() -> None:
    """Let every ready task run (used only to check that something did NOT happen)."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_both_names_are_one_runtime() -> None:
    assert SingleThreadedAgentRuntime is StandaloneAgentRuntime


# -- agent objects ------------------------------------------------------------------------------


async def test_try_get_underlying_agent_instance(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    await register_agent(runtime, EchoAgent, "echo")

    agent = await runtime.try_get_underlying_agent_instance(AgentId("echo", "k"), EchoAgent)

    assert isinstance(agent, EchoAgent)
    assert agent.id == AgentId("echo", "k")
    assert await runtime.try_get_underlying_agent_instance(AgentId("echo", "k")) is agent
    with pytest.raises(TypeError):
        await runtime.try_get_underlying_agent_instance(AgentId("echo", "k"), CounterAgent)
    with pytest.raises(LookupError):
        await runtime.try_get_underlying_agent_instance(AgentId("nobody", "k"))


async def test_factory_context_names_this_runtime(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    await register_agent(runtime, IdentityAgent, "identity")
    await runtime.send_message(WhoAmI(), AgentId("identity", "k"))

    agent = await runtime.try_get_underlying_agent_instance(AgentId("identity", "k"), IdentityAgent)

    assert agent.created_runtime is runtime
    assert agent.runtime is runtime


async def test_get_not_lazy_creates_the_agent_now(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    await register_agent(runtime, CounterAgent, "counter")

    await runtime.get("counter", "lazy")
    await runtime.get("counter", "eager", lazy=False)

    assert set(await runtime.save_state()) == {"counter/eager"}


async def test_register_agent_instance(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    agent = LoggingAgent()

    assert await runtime.register_agent_instance(agent, AgentId("solo", "k")) == AgentId(
        "solo", "k"
    )

    await runtime.send_message(Marker("m"), AgentId("solo", "k"))
    assert agent.id == AgentId("solo", "k")
    assert agent.log == ["marker:m"]
    assert await runtime.try_get_underlying_agent_instance(AgentId("solo", "k")) is agent


async def test_register_instance_subscribes_to_its_key(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    collector = await register_collector(runtime)
    agent = LoggingAgent()
    await agent.register_instance(runtime, AgentId("solo", "inbox"))

    await runtime.publish_message(Marker("by-key"), TopicId("inbox", "inbox"))
    await runtime.publish_message(Marker("direct"), TopicId("solo:", "inbox"))
    await collector.take(2)

    assert agent.log == ["marker:by-key", "marker:direct"]


async def test_agent_instance_registration_errors(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    await register_agent(runtime, EchoAgent, "echo")
    await runtime.register_agent_instance(LoggingAgent(), AgentId("solo", "a"))
    await runtime.register_agent_instance(LoggingAgent(), AgentId("solo", "b"))

    with pytest.raises(ValueError, match="already registered"):
        await runtime.register_agent_instance(LoggingAgent(), AgentId("solo", "a"))
    with pytest.raises(ValueError, match="has a factory"):
        await runtime.register_agent_instance(LoggingAgent(), AgentId("echo", "k"))
    with pytest.raises(ValueError, match="must all be LoggingAgent"):
        await runtime.register_agent_instance(Reporter(), AgentId("solo", "c"))
    with pytest.raises(UndeliverableException):
        await runtime.send_message(GetLog(), AgentId("solo", "never-registered"))


async def test_close_closes_the_agents(make_runtime: MakeRuntime) -> None:
    closed: list[AgentId] = []

    class ClosingAgent(LoggingAgent):
        async def close(self) -> None:
            closed.append(self.id)

    runtime = make_runtime()
    await runtime.register_agent_instance(ClosingAgent(), AgentId("closing", "k"))

    await runtime.close()

    assert closed == [AgentId("closing", "k")]


# -- interventions ------------------------------------------------------------------------------


class Rewriter(DefaultInterventionHandler):
    """Appends "!" to sent Echo texts and "?" to published Marker tags; upper-cases replies."""

    def __init__(self) -> None:
        self.sends: list[tuple[AgentId | None, bool, AgentId]] = []
        self.responses: list[tuple[AgentId, AgentId | None]] = []

    async def on_send(self, message: Any, *, message_context: MessageContext, **kw: Any) -> Any:
        self.sends.append((message_context.sender, message_context.is_rpc, kw["recipient"]))
        return Echo(message.text + "!") if isinstance(message, Echo) else message

    async def on_publish(self, message: Any, **kw: Any) -> Any:
        return Marker(message.tag + "?") if isinstance(message, Marker) else message

    async def on_response(self, message: Any, *, sender: AgentId, recipient: AgentId | None) -> Any:
        self.responses.append((sender, recipient))
        return (
            replace(message, text=message.text.upper())
            if isinstance(message, EchoReply)
            else message
        )


class Dropper(DefaultInterventionHandler):
    """Drops Marker("drop"), sent or published."""

    async def on_send(self, message: Any, **kw: Any) -> Any:
        return DropMessage if message == Marker("drop") else message

    async def on_publish(self, message: Any, **kw: Any) -> Any:
        return DropMessage if message == Marker("drop") else message


async def test_intervention_rewrites_sends_and_responses(make_runtime: MakeRuntime) -> None:
    rewriter = Rewriter()
    runtime = make_runtime(intervention_handlers=[rewriter])
    await register_agent(runtime, EchoAgent, "echo")

    reply = await runtime.send_message(Echo("hi"), AgentId("echo", "k"), sender=AgentId("me", "x"))

    assert reply.text == "HI!"
    assert rewriter.sends == [(AgentId("me", "x"), True, AgentId("echo", "k"))]
    assert rewriter.responses == [(AgentId("echo", "k"), AgentId("me", "x"))]


async def test_interventions_apply_in_order(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime(intervention_handlers=[Rewriter(), Rewriter()])
    await register_agent(runtime, EchoAgent, "echo")

    assert (await runtime.send_message(Echo("hi"), AgentId("echo", "k"))).text == "HI!!"


async def test_dropped_send_raises_message_dropped(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime(intervention_handlers=[Dropper()])
    await register_agent(runtime, LoggingAgent, "logger")

    with pytest.raises(MessageDroppedException):
        await runtime.send_message(Marker("drop"), AgentId("logger", "k"))

    assert await runtime.send_message(GetLog(), AgentId("logger", "k")) == Log([])


async def test_dropped_publish_is_not_delivered(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime(intervention_handlers=[Dropper(), Rewriter()])
    await register_collector(runtime)
    await register_agent(runtime, Reporter, "reporter")
    await runtime.add_subscription(TypeSubscription("news", "reporter"))

    await runtime.publish_message(Marker("drop"), TopicId("news", "k"))
    await runtime.publish_message(Marker("keep"), TopicId("news", "k"))
    await runtime.stop_when_idle()
    runtime.start()

    log = await runtime.send_message(GetLog(), AgentId("reporter", "k"))
    assert log == Log(["marker:keep?"])


# -- exceptions of event handlers ---------------------------------------------------------------


@pytest.mark.parametrize("stopping", ["stop_when_idle", "stop"])
async def test_event_handler_exception_is_raised_when_stopping(
    make_runtime: MakeRuntime, stopping: str
) -> None:
    runtime = make_runtime(ignore_unhandled_exceptions=False)
    await register_agent(runtime, EchoAgent, "echo")
    await runtime.add_subscription(TypeSubscription("fails", "echo"))
    await runtime.publish_message(Fail("custom", "bad event"), TopicId("fails", "k"))
    await yield_a_while()

    with pytest.raises(AgentFailure, match="bad event"):
        await getattr(runtime, stopping)()


async def test_rpc_handler_exception_is_not_a_background_exception(
    make_runtime: MakeRuntime,
) -> None:
    runtime = make_runtime(ignore_unhandled_exceptions=False)
    await register_agent(runtime, EchoAgent, "echo")
    with pytest.raises(KeyError):
        await runtime.send_message(Fail("key", "rpc"), AgentId("echo", "k"))

    await runtime.stop_when_idle()  # does not raise


async def test_event_handler_exceptions_are_ignored_by_default(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    await register_agent(runtime, EchoAgent, "echo")
    await runtime.add_subscription(TypeSubscription("fails", "echo"))

    await runtime.publish_message(Fail("custom", "bad event"), TopicId("fails", "k"))
    await runtime.stop_when_idle()  # does not raise
    runtime.start()

    assert (await runtime.send_message(Echo("alive"), AgentId("echo", "k"))).text == "alive"


# -- tracing ------------------------------------------------------------------------------------


async def test_spans_are_named_after_operation_and_destination(make_runtime: MakeRuntime) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtime = make_runtime(tracer_provider=provider)
    await register_agent(runtime, EchoAgent, "echo")
    await register_collector(runtime, "news")

    await runtime.send_message(Echo("x"), AgentId("echo", "k"))
    await runtime.publish_message(Ping("p"), TopicId("news", "s"))
    await runtime.stop_when_idle()

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert {
        "send echo/k",
        "create echo/k",
        "process echo/k",
        "publish news/s",
        "create collector/s",
        "process collector/s",
    } <= set(spans)
    send, process = spans["send echo/k"], spans["process echo/k"]
    assert process.context.trace_id == send.context.trace_id
    assert spans["process collector/s"].context.trace_id == spans["publish news/s"].context.trace_id
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.message.id"] == send.attributes["messaging.message.id"]


async def test_an_event_that_waited_its_turn_is_traced_under_its_own_publish(
    make_runtime: MakeRuntime,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtime = make_runtime(tracer_provider=provider)
    await register_collector(runtime, "news")
    tracer = provider.get_tracer("test")

    for caller in ("first", "second"):  # the second waits until the first one's turn ends
        with tracer.start_as_current_span(caller):
            await runtime.publish_message(Ping(caller), TopicId("news", "s"))
    await runtime.stop_when_idle()

    spans = exporter.get_finished_spans()
    publishes = {s.context.span_id: s for s in spans if s.name == "publish news/s"}
    parents = [s.parent.span_id for s in spans if s.name == "process collector/s" and s.parent]
    assert sorted(parents) == sorted(publishes)


# -- lifecycle ----------------------------------------------------------------------------------


async def test_messages_sent_before_start_wait_for_it(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime(start=False)
    collector = await register_collector(runtime, "news")
    await register_agent(runtime, EchoAgent, "echo")

    sending = asyncio.ensure_future(runtime.send_message(Echo("early"), AgentId("echo", "k")))
    publishing = asyncio.ensure_future(runtime.publish_message(Ping("early"), TopicId("news", "s")))
    await yield_a_while()
    assert not sending.done()
    assert collector.pending() == 0

    runtime.start()

    assert (await sending).text == "early"
    await publishing
    [got] = await collector.take(1)
    assert got.message == Ping("early")


async def test_messages_sent_after_stop_wait_for_the_next_start(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    await register_agent(runtime, EchoAgent, "echo")
    await runtime.stop()

    sending = asyncio.ensure_future(runtime.send_message(Echo("later"), AgentId("echo", "k")))
    await yield_a_while()
    assert not sending.done()
    runtime.start()

    assert (await sending).text == "later"


async def test_stop_when_idle_waits_for_every_event_and_what_it_caused(
    make_runtime: MakeRuntime,
) -> None:
    runtime = make_runtime()
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "reporter")
    await runtime.add_subscription(TypeSubscription("news", "reporter"))

    for i in range(5):
        await runtime.publish_message(Ping(str(i)), TopicId("news", f"k{i}"))
    await runtime.stop_when_idle()

    assert collector.pending() == 5


async def test_stop_when_stops_once_the_condition_holds(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    collector = await register_collector(runtime, "news")
    for i in range(3):
        await runtime.publish_message(Ping(str(i)), TopicId("news", "s"))

    await runtime.stop_when(lambda: collector.pending() >= 3, check_period=0.001)

    assert collector.pending() == 3
    with pytest.raises(RuntimeError):
        await runtime.stop()  # already stopped


async def test_start_stop_and_close_in_the_wrong_state(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    with pytest.raises(RuntimeError):
        runtime.start()
    await runtime.stop()
    with pytest.raises(RuntimeError):
        await runtime.stop()
    with pytest.raises(RuntimeError):
        await runtime.stop_when_idle()
    runtime.start()
    await runtime.close()  # stops a running runtime
    with pytest.raises(RuntimeError):
        await runtime.stop()


async def test_crossing_cycles_run_one_after_the_other_in_process() -> None:
    # Two outside calls whose chains cross (a -> b -> a and b -> a -> b) wait for each other in
    # any turn-based system when both first hops arrive at once, as on the broker (where the RPC
    # timeout ends the wait). In one process the first call runs inline and completes first.
    runtime = SingleThreadedAgentRuntime()
    runtime.start()
    await register_agent(runtime, CycleAgent, "cycle")

    trails = await asyncio.gather(
        runtime.send_message(Relay(["cycle/b", "cycle/a"]), AgentId("cycle", "a")),
        runtime.send_message(Relay(["cycle/a", "cycle/b"]), AgentId("cycle", "b")),
    )

    assert trails == [
        Trail(["cycle/a", "cycle/b", "cycle/a"]),
        Trail(["cycle/b", "cycle/a", "cycle/b"]),
    ]
    await runtime.stop()
    await runtime.close()
