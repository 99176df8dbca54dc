"""Every Redis script and transaction touches keys of one Redis Cluster hash slot: the registry's
keys share the tag ``{<ns>}``, an agent's keys the tag ``{<type>/<key>}``."""

from __future__ import annotations

import pytest

from agnext_broker import AgentId
from agnext_broker.application.broker._names import Names


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key: str) -> int:
    """The Redis Cluster slot of ``key`` (https://redis.io/docs/reference/cluster-spec/)."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc16_xmodem(key.encode()) % 16384


def test_the_slot_function_agrees_with_redis() -> None:
    # Values from the cluster specification and `CLUSTER KEYSLOT`.
    assert crc16_xmodem(b"123456789") == 0x31C3
    assert slot("foo") == 12182
    assert slot("{user1000}.following") == slot("{user1000}.followers")


NAMES = Names("apps")
AGENT = AgentId("tallier", "alpha:{odd}/key")


@pytest.mark.parametrize(
    ("what", "keys"),
    [
        (
            "heartbeat and live workers",
            [NAMES.workers_key, NAMES.worker_info_key, NAMES.subscriptions_version_key],
        ),
        ("partition claim", [NAMES.owner_key("tallier", 3), NAMES.workers_key]),
        ("subscription change", [NAMES.subscriptions_key, NAMES.subscriptions_version_key]),
        (
            "state write",
            [NAMES.state_key(AGENT), NAMES.applied_key(AGENT), NAMES.responses_key(AGENT)],
        ),
    ],
)
def test_the_keys_of_each_script_share_one_slot(what: str, keys: list[str]) -> None:
    assert len({slot(k) for k in keys}) == 1, (what, {k: slot(k) for k in keys})


def test_agents_spread_over_slots_while_the_registry_keeps_one() -> None:
    agents = [AgentId("tallier", f"k{i}") for i in range(50)]
    assert len({slot(NAMES.state_key(a)) for a in agents}) > 40
    registry = [NAMES.types_key, NAMES.active_key("tallier"), NAMES.owner_key("reporter", 0)]
    assert {slot(k) for k in registry} == {slot(NAMES.workers_key)}
