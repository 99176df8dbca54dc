"""Reusable agents (RoutedAgent with its handler decorators, ClosureAgent), component
configuration, and the value types models exchange (FunctionCall, Image)."""

from ._closure_agent import ClosureAgent, ClosureContext
from ._component_config import (
    Component,
    ComponentBase,
    ComponentFromConfig,
    ComponentLoader,
    ComponentModel,
    ComponentSchemaType,
    ComponentToConfig,
    ComponentType,
    is_component_class,
    is_component_instance,
)
from ._routed_agent import MessageHandler, RoutedAgent, event, message_handler, rpc
from .models._function_call import FunctionCall
from .models._image import Image

__all__ = [
    "ClosureAgent",
    "ClosureContext",
    "Component",
    "ComponentBase",
    "ComponentFromConfig",
    "ComponentLoader",
    "ComponentModel",
    "ComponentSchemaType",
    "ComponentToConfig",
    "ComponentType",
    "FunctionCall",
    "Image",
    "MessageHandler",
    "RoutedAgent",
    "event",
    "is_component_class",
    "is_component_instance",
    "message_handler",
    "rpc",
]
