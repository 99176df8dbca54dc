"""The broker runtime: workers exchange CloudEvents over RabbitMQ; Redis holds the registry and
the agents' state."""

from ...base import MessageTooLargeError
from ._runtime import BrokerAgentRuntime
from ._settings import BrokerSettings, SettingsError

__all__ = ["BrokerAgentRuntime", "BrokerSettings", "MessageTooLargeError", "SettingsError"]
