import importlib
from types import ModuleType

import pytest

import agnext_broker

# autogen-core names that DESIGN.md promises, so that an autogen-core agent ports by its imports.
AUTOGEN_CORE_NAMES = [
    "AgentId",
    "AgentType",
    "TopicId",
    "DefaultTopicId",
    "Subscription",
    "TypeSubscription",
    "TypePrefixSubscription",
    "DefaultSubscription",
    "default_subscription",
    "type_subscription",
    "Agent",
    "BaseAgent",
    "AgentInstantiationContext",
    "RoutedAgent",
    "message_handler",
    "event",
    "rpc",
    "ClosureAgent",
    "ClosureContext",
    "MessageContext",
    "CancellationToken",
    "AgentRuntime",
    "AgentMetadata",
    "MessageSerializer",
    "try_get_known_serializers_for_type",
    "JSON_DATA_CONTENT_TYPE",
    "InterventionHandler",
    "DefaultInterventionHandler",
    "DropMessage",
    "CantHandleException",
    "UndeliverableException",
    "MessageDroppedException",
    "NotAccessibleError",
    "SingleThreadedAgentRuntime",
]


def test_all_is_complete_without_duplicates() -> None:
    # ruff's RUF022 keeps __all__ sorted
    assert len(set(agnext_broker.__all__)) == len(agnext_broker.__all__)
    public = {name for name in vars(agnext_broker) if not name.startswith("_")}
    # subpackages (application, models, tools, ...) appear once imported; they are not names
    modules = {name for name in public if isinstance(getattr(agnext_broker, name), ModuleType)}
    assert set(agnext_broker.__all__) == public - modules


@pytest.mark.parametrize("name", AUTOGEN_CORE_NAMES)
def test_autogen_core_name_is_exported(name: str) -> None:
    assert name in agnext_broker.__all__


@pytest.mark.parametrize("package", ["base", "application", "components"])
def test_every_layer_name_is_reexported_at_top_level(package: str) -> None:
    module = importlib.import_module(f"agnext_broker.{package}")
    internal = {"HandlerFrame", "SerializationRegistry", "subscription_factory", "wire_name_of"}
    for name in module.__all__:
        if name not in internal:
            assert getattr(agnext_broker, name) is getattr(module, name), name


def test_standalone_runtime_is_single_threaded_agent_runtime() -> None:
    assert agnext_broker.SingleThreadedAgentRuntime is agnext_broker.StandaloneAgentRuntime


def test_package_ships_py_typed() -> None:
    from importlib.resources import files

    assert files("agnext_broker").joinpath("py.typed").is_file()
