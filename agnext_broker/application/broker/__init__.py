"""The broker runtime: workers exchange CloudEvents over RabbitMQ; Redis holds the registry and
the agents' state."""

from ._runtime import BrokerAgentRuntime
from ._settings import BrokerSettings
from ._transport import MessageTooLargeError

__all__ = ["BrokerAgentRuntime", "BrokerSettings", "MessageTooLargeError"]
