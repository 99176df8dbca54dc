import asyncio

from agnext_broker.application._turns import Place, TurnGate


async def test_one_turn_at_a_time_in_arrival_order() -> None:
    gate = TurnGate()
    order: list[str] = []

    async def turn(name: str) -> None:
        await gate.enter(name)
        order.append(f"in {name}")
        await asyncio.sleep(0)
        order.append(f"out {name}")
        gate.leave(name)

    await asyncio.gather(*(turn(c) for c in "abc"))
    assert order == ["in a", "out a", "in b", "out b", "in c", "out c"]
    assert not gate.busy


async def test_a_message_whose_call_path_holds_the_running_turn_goes_in_at_once() -> None:
    gate = TurnGate()
    await gate.enter("outer")
    assert gate.try_enter("callback", ("elsewhere", "outer"))  # outer waits for it
    assert not gate.try_enter("sibling", ("elsewhere",))  # nobody inside waits for it
    assert not gate.try_enter("event")
    gate.leave("callback")
    gate.leave("outer")
    assert gate.try_enter("event")


async def test_deferred_turns_start_in_line_with_waiting_sends() -> None:
    gate = TurnGate()
    started: list[str] = []
    gate.defer("e1", lambda: started.append("e1"))  # idle: starts at once
    send = Place(gate, "send", ())
    gate.defer("e2", lambda: started.append("e2"))
    assert started == ["e1"]
    gate.leave("e1")
    await asyncio.wait_for(send.wait(), 1)
    assert started == ["e1"]  # e2 waits behind the send
    send.leave()
    assert started == ["e1", "e2"]
    gate.leave("e2")
    assert not gate.busy


async def test_cancelled_waiter_gives_up_its_place() -> None:
    gate = TurnGate()
    await gate.enter("a")
    cancelled = asyncio.ensure_future(gate.enter("b"))
    waiting = asyncio.ensure_future(gate.enter("c"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.leave("a")
    await asyncio.wait_for(waiting, 1)
    assert gate.busy
    assert gate.waiting == 0


async def test_abandoning_a_granted_place_passes_the_turn_on() -> None:
    gate = TurnGate()
    first = Place(gate, "first", ())
    second = Place(gate, "second", ())
    assert first.ticket is None
    first.abandon()
    await asyncio.wait_for(second.wait(), 1)


async def test_open_all_admits_everyone_waiting() -> None:
    gate = TurnGate()
    places = [Place(gate, i, ()) for i in range(3)]
    gate.open_all()
    await asyncio.wait_for(asyncio.gather(*(p.wait() for p in places)), 1)
    assert gate.waiting == 0
