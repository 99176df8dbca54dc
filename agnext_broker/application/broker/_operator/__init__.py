"""What an operator needs besides the workers: read what a namespace holds in Redis and RabbitMQ
(``agnext-broker inspect``), and send dead letters back or delete them (``agnext-broker
dead-letters``). Built on the runtime's adapters, so every client error arrives as an
``AgnextError`` and every server is named without its password."""

from ._connections import Connections
from ._dead_letters import DeadLetters, Progress
from ._errors import NotFoundError
from ._inspection import Inspection
from ._views import (
    AgentStateView,
    AgentsView,
    AgentView,
    DeadLettersView,
    DeadLetterView,
    PartitionView,
    ReplayResult,
    SubscriptionsView,
    SubscriptionView,
    TypeView,
    Unroutable,
    WorkerView,
)

__all__ = [
    "AgentStateView",
    "AgentView",
    "AgentsView",
    "Connections",
    "DeadLetterView",
    "DeadLetters",
    "DeadLettersView",
    "Inspection",
    "NotFoundError",
    "PartitionView",
    "Progress",
    "ReplayResult",
    "SubscriptionView",
    "SubscriptionsView",
    "TypeView",
    "Unroutable",
    "WorkerView",
]
