"""The partition plan: balanced within one, the same on every worker, and only what must move
moves when a worker joins or leaves."""

from __future__ import annotations

import random

import pytest

from agnext_broker.application.broker._assignment import plan


def settle(agent_type: str, hosts: list[str], holders: list[str | None]) -> list[str]:
    """Apply the plan until it stops changing, as the workers do one heartbeat at a time (a
    holder gives a partition up, then the planned worker claims it)."""
    current: list[str | None] = list(holders)
    for _ in range(10):
        live = [h if h in hosts else None for h in current]
        planned = plan(agent_type, hosts, live)
        if planned == live:
            return planned
        # Releases happen first; claims of free partitions on the next tick.
        current = [p if h == p else None for h, p in zip(live, planned, strict=True)]
        current = [
            c if c is not None else plan(agent_type, hosts, current)[i]
            for i, c in enumerate(current)
        ]
    raise AssertionError(f"the plan did not settle: {current}")


def loads(assignment: list[str], hosts: list[str]) -> list[int]:
    return sorted(assignment.count(h) for h in hosts)


@pytest.mark.parametrize("partitions", [1, 2, 4, 16, 64])
@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_every_worker_holds_its_share_within_one(partitions: int, count: int) -> None:
    hosts = [f"w{i}" for i in range(count)]
    assignment = settle("tallier", hosts, [None] * partitions)
    share = loads(assignment, hosts)
    assert max(share) - min(share) <= 1
    assert sum(share) == partitions


def test_every_worker_computes_the_same_plan() -> None:
    holders: list[str | None] = ["a", "a", "b", None, "c", "a", None, "b"]
    first = plan("t", ["a", "b", "c"], holders)
    assert plan("t", ["c", "a", "b"], holders) == first  # whatever order the hosts come in


def test_a_joining_worker_takes_only_what_the_others_must_give_up() -> None:
    rng = random.Random(7)
    for _ in range(300):
        partitions = rng.choice([4, 8, 16, 32])
        count = rng.randint(1, 6)
        hosts = [f"w{rng.random():.6f}" for _ in range(count)]
        before = settle("t", hosts, [None] * partitions)
        newcomer = "new"
        after = settle("t", [*hosts, newcomer], list(before))
        moved = [p for p in range(partitions) if before[p] != after[p]]
        # Every partition that moved went to the newcomer, and no more than its share did.
        assert all(after[p] == newcomer for p in moved)
        assert len(moved) == after.count(newcomer)
        assert after.count(newcomer) in (partitions // (count + 1), -(-partitions // (count + 1)))


def test_a_leaving_worker_hands_over_its_own_partitions_only() -> None:
    rng = random.Random(11)
    for _ in range(300):
        partitions = rng.choice([4, 8, 16, 32])
        count = rng.randint(2, 6)
        hosts = [f"w{rng.random():.6f}" for _ in range(count)]
        before = settle("t", hosts, [None] * partitions)
        gone = rng.choice(hosts)
        remaining = [h for h in hosts if h != gone]
        after = settle("t", remaining, list(before))
        moved = [p for p in range(partitions) if before[p] != after[p]]
        assert sorted(moved) == [p for p in range(partitions) if before[p] == gone]
        share = loads(after, remaining)
        assert max(share) - min(share) <= 1


def test_partitions_of_different_types_spread_differently() -> None:
    hosts = ["a", "b", "c", "d"]
    first = plan("tallier", hosts, [None] * 4)
    second = plan("reporter", hosts, [None] * 4)
    assert sorted(first) == sorted(second) == hosts  # one each
    assert first != second  # not always the same worker first
