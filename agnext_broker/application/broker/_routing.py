"""Partitions and routing keys.

An agent's partition is a stable hash of its key, modulo the type's partition count P (a power
of two, at most 256). Routing keys carry the hash's low 8 bits as 8 words, then the agent type
(direct messages) or the topic type (events), so that one binding per partition selects exactly
that partition's messages whatever P a type chose: partition ``p`` of ``P = 2**k`` binds the
first ``k`` bit-words of ``p`` and ``*`` for the rest.

Topic types may contain ``.`` and ``:``; a ``:`` is followed by an extra ``.`` in the key, so that
a prefix ending in ``:`` (the ``"<type>:"`` direct-message subscription) is a whole number of
words and binds as ``<prefix words>.#``. Other subscription kinds bind wider.
"""

from __future__ import annotations

import zlib

from ...base import Subscription, TypePrefixSubscription, TypeSubscription

HASH_BITS = 8
MAX_PARTITIONS = 1 << HASH_BITS
MAX_ROUTING_KEY_BYTES = 255


def key_hash(key: str) -> int:
    """The stable 8-bit hash of an agent key (or topic source)."""
    return zlib.crc32(key.encode()) & (MAX_PARTITIONS - 1)


def partition_of(key: str, partitions: int) -> int:
    return key_hash(key) & (partitions - 1)


def check_partitions(partitions: int) -> int:
    if partitions < 1 or partitions > MAX_PARTITIONS or partitions & (partitions - 1):
        raise ValueError(
            f"Invalid partition count {partitions}: use a power of two from 1 to {MAX_PARTITIONS}."
        )
    return partitions


def _bit_words(value: int, bits: int) -> list[str]:
    return ["1" if value >> i & 1 else "0" for i in range(bits)]


def _encode_name(name: str) -> str:
    return name.replace(":", ":.")


def routing_key(key: str, name: str) -> str:
    """The routing key of a message to ``name`` (agent or topic type) about agent key ``key``."""
    routing = ".".join([*_bit_words(key_hash(key), HASH_BITS), _encode_name(name)])
    if len(routing.encode()) > MAX_ROUTING_KEY_BYTES:
        raise ValueError(f"Type name {name[:40]!r}... is too long for an AMQP routing key.")
    return routing


def _partition_pattern(partition: int, partitions: int) -> list[str]:
    bits = partitions.bit_length() - 1
    return [*_bit_words(partition, bits), *["*"] * (HASH_BITS - bits)]


def direct_binding(agent_type: str, partition: int, partitions: int) -> str:
    """The binding of partition ``partition`` of ``agent_type`` to the direct exchange."""
    return ".".join([*_partition_pattern(partition, partitions), _encode_name(agent_type)])


def subscription_binding(subscription: Subscription, partition: int, partitions: int) -> str:
    """The events-exchange binding of one partition for ``subscription``.

    A kind that bindings cannot express exactly binds wider (every event of the partition);
    workers check ``is_match`` on every event they receive, so a wider binding costs traffic,
    never a wrong delivery.
    """
    pattern = _partition_pattern(partition, partitions)
    if isinstance(subscription, TypeSubscription):
        return ".".join([*pattern, _encode_name(subscription.topic_type)])
    if isinstance(subscription, TypePrefixSubscription):
        prefix = _encode_name(subscription.topic_type_prefix)
        if prefix.endswith("."):  # the prefix ends on a word boundary
            return ".".join([*pattern, prefix[:-1], "#"])
    return ".".join([*pattern, "#"])
