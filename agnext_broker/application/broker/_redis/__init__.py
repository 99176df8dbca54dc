"""The Redis side of the broker runtime: the registry, partition claims and agents' records.

Everything here translates redis-py's exceptions into agnext-broker's (``_errors.py``), so the
rest of the runtime never catches ``redis.*``.
"""

from ._claims import Claim, PartitionClaims
from ._connection import connect_redis
from ._errors import redis_errors
from ._registry import (
    Registry,
    RegistryView,
    WorkerInfo,
    subscription_from_json,
    subscription_to_json,
)
from ._state_store import (
    AgentRecord,
    Retention,
    StateConflict,
    StateStore,
    StoredResponse,
    dedup_key,
)

__all__ = [
    "AgentRecord",
    "Claim",
    "PartitionClaims",
    "Registry",
    "RegistryView",
    "Retention",
    "StateConflict",
    "StateStore",
    "StoredResponse",
    "WorkerInfo",
    "connect_redis",
    "dedup_key",
    "redis_errors",
    "subscription_from_json",
    "subscription_to_json",
]
