"""Which partitions of an agent type each live worker should hold: balanced, and sticky.

Every worker computes the same plan from the same inputs (the live workers hosting the type, as
the registry lists them, and who holds each partition now), so no coordinator is needed:

1. with ``P`` partitions and ``N`` live hosts, every worker's quota is ``P // N``, and the
   ``P % N`` workers holding the most now (ties: by id) may hold one more;
2. a partition stays with its holder if the holder is live and within its quota (a holder over
   its quota keeps the partitions it ranks highest and gives up the rest);
3. every other partition (free, held by a worker that is gone, or given up) goes, in partition
   order, to the live host under its quota that ranks it highest.

A worker's rank of a partition is a hash of (worker, type, partition): rendezvous hashing, so
ties go the same way everywhere. Only what must move moves: a worker that joins takes partitions
from the workers over their new quota and nothing else changes hands; a worker that leaves hands
over its own partitions and no other.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence


def rank(worker_id: str, agent_type: str, partition: int) -> int:
    """How much ``worker_id`` wants ``partition`` of ``agent_type`` (rendezvous hash)."""
    digest = hashlib.blake2b(f"{worker_id}\x00{agent_type}\x00{partition}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def quotas(hosts: Sequence[str], holders: Sequence[str | None]) -> dict[str, int]:
    """How many partitions each live host may hold."""
    live = sorted(set(hosts))
    base, extra = divmod(len(holders), len(live))
    held = Counter(h for h in holders if h is not None)
    by_holdings = sorted(live, key=lambda w: (-held[w], w))
    return {w: base + (1 if i < extra else 0) for i, w in enumerate(by_holdings)}


def plan(agent_type: str, hosts: Sequence[str], holders: Sequence[str | None]) -> list[str]:
    """The worker that should hold each partition (``holders[p]``: the live worker that holds
    ``p`` now, or ``None``); ``hosts`` are the live workers hosting ``agent_type``, not empty."""
    quota = quotas(hosts, holders)
    planned: dict[int, str] = {}
    for worker in quota:
        held = [p for p, holder in enumerate(holders) if holder == worker]
        held.sort(key=lambda p: rank(worker, agent_type, p), reverse=True)
        planned.update((p, worker) for p in held[: quota[worker]])
    load = Counter(planned.values())
    for partition in range(len(holders)):
        if partition in planned:
            continue
        candidates = [w for w in quota if load[w] < quota[w]]
        chosen = max(candidates, key=lambda w: rank(w, agent_type, partition))
        planned[partition] = chosen
        load[chosen] += 1
    return [planned[p] for p in range(len(holders))]
