"""Interfaces and value types shared by every runtime."""

from ._agent import Agent, AgentMetadata
from ._agent_id import AgentId, AgentType
from ._agent_runtime import AgentRuntime
from ._base_agent import BaseAgent, handles, subscription_factory
from ._cancellation import CancellationToken
from ._contexts import (
    AgentInstantiationContext,
    MessageHandlerContext,
    SubscriptionInstantiationContext,
)
from ._default_subscription import default_subscription, type_subscription
from ._exceptions import (
    AccessRefusedError,
    AgnextError,
    AgnextTimeoutError,
    CantHandleException,
    MessageDroppedException,
    MessageRejectedError,
    MessageTooLargeError,
    NotAccessibleError,
    PublishTimeoutError,
    RemoteHandlerError,
    ResponseExpiredError,
    RpcTimeoutError,
    SerializationError,
    ServiceUnavailableError,
    TopologyError,
    UndeliverableException,
    WireNameCollisionError,
)
from ._intervention import DefaultInterventionHandler, DropMessage, InterventionHandler
from ._message_context import MessageContext
from ._serialization import (
    JSON_DATA_CONTENT_TYPE,
    DataclassJsonMessageSerializer,
    MessageSerializer,
    PydanticJsonMessageSerializer,
    SerializationRegistry,
    UnknownPayload,
    try_get_known_serializers_for_type,
    wire_name,
    wire_name_of,
)
from ._subscription import (
    DefaultSubscription,
    Subscription,
    TypePrefixSubscription,
    TypeSubscription,
    UnboundSubscription,
)
from ._topic import DefaultTopicId, TopicId

__all__ = [
    "JSON_DATA_CONTENT_TYPE",
    "AccessRefusedError",
    "Agent",
    "AgentId",
    "AgentInstantiationContext",
    "AgentMetadata",
    "AgentRuntime",
    "AgentType",
    "AgnextError",
    "AgnextTimeoutError",
    "BaseAgent",
    "CancellationToken",
    "CantHandleException",
    "DataclassJsonMessageSerializer",
    "DefaultInterventionHandler",
    "DefaultSubscription",
    "DefaultTopicId",
    "DropMessage",
    "InterventionHandler",
    "MessageContext",
    "MessageDroppedException",
    "MessageHandlerContext",
    "MessageRejectedError",
    "MessageSerializer",
    "MessageTooLargeError",
    "NotAccessibleError",
    "PublishTimeoutError",
    "PydanticJsonMessageSerializer",
    "RemoteHandlerError",
    "ResponseExpiredError",
    "RpcTimeoutError",
    "SerializationError",
    "SerializationRegistry",
    "ServiceUnavailableError",
    "Subscription",
    "SubscriptionInstantiationContext",
    "TopicId",
    "TopologyError",
    "TypePrefixSubscription",
    "TypeSubscription",
    "UnboundSubscription",
    "UndeliverableException",
    "UnknownPayload",
    "WireNameCollisionError",
    "default_subscription",
    "handles",
    "subscription_factory",
    "try_get_known_serializers_for_type",
    "type_subscription",
    "wire_name",
    "wire_name_of",
]
