import asyncio

from agnext_broker.application._turns import TurnGate


async def test_one_chain_at_a_time_in_arrival_order() -> None:
    gate = TurnGate()
    order: list[str] = []

    async def turn(chain: str) -> None:
        await gate.enter(chain)
        order.append(f"in {chain}")
        await asyncio.sleep(0)
        order.append(f"out {chain}")
        gate.leave()

    await asyncio.gather(*(turn(c) for c in "abc"))
    assert order == ["in a", "out a", "in b", "out b", "in c", "out c"]
    assert not gate.busy


async def test_same_chain_reenters_while_its_turn_is_held() -> None:
    gate = TurnGate()
    await gate.enter("x")
    assert gate.try_enter("x")  # reentrant call of the same chain
    assert not gate.try_enter("y")
    gate.leave()
    gate.leave()
    assert gate.try_enter("y")


async def test_waiters_of_the_new_owner_chain_are_admitted_together() -> None:
    gate = TurnGate()
    await gate.enter("owner")
    first = asyncio.ensure_future(gate.enter("x"))
    other = asyncio.ensure_future(gate.enter("y"))
    second = asyncio.ensure_future(gate.enter("x"))
    await asyncio.sleep(0)
    gate.leave()
    await asyncio.sleep(0)
    assert first.done()
    assert second.done()
    assert not other.done()
    gate.leave()
    gate.leave()
    await asyncio.sleep(0)
    assert other.done()


async def test_cancelled_waiter_does_not_block_the_gate() -> None:
    gate = TurnGate()
    await gate.enter("a")
    cancelled = asyncio.ensure_future(gate.enter("b"))
    waiting = asyncio.ensure_future(gate.enter("c"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.leave()
    await asyncio.wait_for(waiting, 1)
    assert gate.busy
    assert gate.waiting == 0
