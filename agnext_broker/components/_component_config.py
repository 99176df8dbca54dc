"""Component configuration: dump an object to a declarative ComponentModel and load it back.

As in autogen-core, a component interface (such as ``ChatCompletionClient``) derives from
:class:`ComponentBase`, and a concrete class also derives from :class:`Component` and names its
pydantic config class in ``component_config_schema``. The dumped model names the class by its
import path (``provider``), so loading imports that module: load configurations you trust, never
ones that arrive as message payloads.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, ClassVar, Generic, Literal, Self, TypeGuard, TypeVar, cast, overload

from pydantic import BaseModel

ComponentType = Literal["model", "agent", "tool", "termination", "token_provider"] | str
ConfigT = TypeVar("ConfigT", bound=BaseModel)
FromConfigT = TypeVar("FromConfigT", bound=BaseModel, contravariant=True)
ToConfigT = TypeVar("ToConfigT", bound=BaseModel, covariant=True)
ExpectedType = TypeVar("ExpectedType")

# A configuration written by autogen-core names its classes under autogen_core; the same classes
# live here under agnext_broker, so such a configuration loads unchanged.
_AUTOGEN_CORE_PREFIX = "autogen_core."


class ComponentModel(BaseModel):
    """Everything needed to create a component: which class, which version, its configuration."""

    provider: str
    """The import path of the component's class, e.g.
    ``agnext_broker.model_context.BufferedChatCompletionContext``."""

    component_type: ComponentType | None = None
    """The logical type of the component (``"model"``, ``"chat_completion_context"``, ...)."""

    version: int | None = None
    """The version of the component specification."""

    component_version: int | None = None
    """The version of the component's config schema; older configs go through
    ``_from_config_past_version``."""

    description: str | None = None
    label: str | None = None
    """A human-readable name; the class name unless the class sets ``component_label``."""

    config: dict[str, Any]
    """The configuration, validated by the class's ``component_config_schema`` on load."""


class ComponentFromConfig(Generic[FromConfigT]):
    """What a class implements to be created from its configuration."""

    @classmethod
    def _from_config(cls, config: FromConfigT) -> Self:
        """Create an instance from a validated configuration object."""
        raise NotImplementedError("This component does not support loading from config")

    @classmethod
    def _from_config_past_version(cls, config: dict[str, Any], version: int) -> Self:
        """Create an instance from the configuration of an older ``component_version``."""
        raise NotImplementedError("This component does not support loading from past versions")


class ComponentToConfig(Generic[ToConfigT]):
    """What a class implements to be dumped to a :class:`ComponentModel`."""

    component_type: ClassVar[ComponentType]
    component_version: ClassVar[int] = 1
    component_provider_override: ClassVar[str | None] = None
    """The provider string to dump instead of the class's own (private) module path."""
    component_description: ClassVar[str | None] = None
    component_label: ClassVar[str | None] = None

    def _to_config(self) -> ToConfigT:
        """The configuration that creates an instance like this one."""
        raise NotImplementedError("This component does not support dumping to config")

    def dump_component(self) -> ComponentModel:
        """This component as a :class:`ComponentModel` that :meth:`~ComponentLoader.load_component`
        turns back into an equivalent instance.

        Raises:
            TypeError: the class is defined inside a function, so it cannot be imported.
            AttributeError: the class has no ``component_type``.
        """
        provider = self.component_provider_override
        if provider is None:
            provider = f"{type(self).__module__}.{type(self).__qualname__}"
            if "._" in provider:
                warnings.warn(
                    f"Provider {provider!r} names a private module; set "
                    "component_provider_override to the public path of the class.",
                    stacklevel=2,
                )
        if "<locals>" in provider:
            raise TypeError("Cannot dump a component whose class is defined inside a function.")
        if not hasattr(self, "component_type"):
            raise AttributeError(f"{type(self).__qualname__} defines no component_type.")
        return ComponentModel(
            provider=provider,
            component_type=self.component_type,
            version=self.component_version,
            component_version=self.component_version,
            description=self.component_description or _summary_of(type(self).__doc__),
            label=self.component_label or type(self).__name__,
            config=self._to_config().model_dump(exclude_none=True),
        )


class ComponentLoader:
    """Provides :meth:`load_component` to component interfaces."""

    @overload
    @classmethod
    def load_component(
        cls, model: ComponentModel | dict[str, Any], expected: None = None
    ) -> Self: ...

    @overload
    @classmethod
    def load_component(
        cls, model: ComponentModel | dict[str, Any], expected: type[ExpectedType]
    ) -> ExpectedType: ...

    @classmethod
    def load_component(
        cls, model: ComponentModel | dict[str, Any], expected: type[ExpectedType] | None = None
    ) -> Self | ExpectedType:
        """Create the component a :class:`ComponentModel` (or its dict) describes.

        Example::

            context = ChatCompletionContext.load_component(dumped)

        Args:
            model: what :meth:`~ComponentToConfig.dump_component` returned, or its JSON dict.
            expected: the type to check the result against, when called on
                :class:`ComponentLoader` itself.

        Raises:
            ValueError: the provider is not a ``module.Class`` path.
            TypeError: the provider is not a component class, or the result is not of the
                expected type.
        """
        loaded = model if isinstance(model, ComponentModel) else ComponentModel(**model)
        component_class = _import_provider(loaded.provider)
        if not is_component_class(component_class):
            raise TypeError(f"{loaded.provider} is not a component class.")
        for required in ("component_config_schema", "component_type"):
            if not hasattr(component_class, required):
                raise AttributeError(f"{loaded.provider} defines no {required}.")
        current_version = component_class.component_version
        config_version = loaded.component_version or current_version
        if config_version < current_version:
            try:
                instance: object = component_class._from_config_past_version(
                    loaded.config, config_version
                )
            except NotImplementedError as e:
                raise NotImplementedError(
                    f"{loaded.provider} is at component version {current_version} and cannot "
                    f"load a version {config_version} configuration."
                ) from e
        else:
            config = component_class.component_config_schema.model_validate(loaded.config)
            instance = component_class._from_config(config)
        wanted: type[Any] = cls if expected is None else expected
        if not isinstance(instance, wanted):
            raise TypeError(
                f"{loaded.provider} is not a {wanted.__qualname__} (it is loaded as one)."
            )
        return cast(Self | ExpectedType, instance)


class ComponentSchemaType(Generic[ConfigT]):
    """Carries ``component_config_schema``: the pydantic class of a component's configuration."""

    component_config_schema: type[ConfigT]
    required_class_vars: ClassVar[list[str]] = ["component_config_schema", "component_type"]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__ not in ("Component", "_ConcreteComponent"):
            for name in cls.required_class_vars:
                if not hasattr(cls, name):
                    warnings.warn(
                        f"{cls.__name__} must define the class variable {name!r} to be a "
                        "valid component.",
                        stacklevel=2,
                    )


class ComponentBase(ComponentToConfig[ConfigT], ComponentLoader, Generic[ConfigT]):
    """The base of a component interface: it can be dumped, and loaded through it."""


class Component(ComponentFromConfig[ConfigT], ComponentSchemaType[ConfigT], Generic[ConfigT]):
    """The base of a concrete component class, next to its interface's :class:`ComponentBase`.

    Example::

        class Config(BaseModel):
            value: str


        class MyComponent(ComponentBase[Config], Component[Config]):
            component_type = "custom"
            component_config_schema = Config

            def __init__(self, value: str) -> None:
                self.value = value

            def _to_config(self) -> Config:
                return Config(value=self.value)

            @classmethod
            def _from_config(cls, config: Config) -> Self:
                return cls(value=config.value)
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not is_component_class(cls):
            warnings.warn(
                f"Component class {cls.__name__} must also derive from ComponentBase (or "
                "ComponentToConfig and ComponentLoader).",
                stacklevel=2,
            )


class _ConcreteComponent(
    ComponentFromConfig[ConfigT],
    ComponentSchemaType[ConfigT],
    ComponentToConfig[ConfigT],
    ComponentLoader,
    Generic[ConfigT],
):
    """Only for type narrowing: what a complete component class is."""


def is_component_instance(obj: Any) -> TypeGuard[_ConcreteComponent[BaseModel]]:
    """Whether ``obj`` is an instance of a complete component class."""
    return is_component_class(type(obj))


def is_component_class(cls: type) -> TypeGuard[type[_ConcreteComponent[BaseModel]]]:
    """Whether ``cls`` can be both dumped and loaded as a component."""
    return isinstance(cls, type) and all(
        issubclass(cls, part)
        for part in (ComponentFromConfig, ComponentToConfig, ComponentSchemaType, ComponentLoader)
    )


def _import_provider(provider: str) -> type:
    module_path, _, class_name = provider.rpartition(".")
    if not module_path or not class_name:
        raise ValueError(f"Invalid provider {provider!r}: expected 'package.module.Class'.")
    if module_path.startswith(_AUTOGEN_CORE_PREFIX) or module_path == "autogen_core":
        module_path = "agnext_broker" + module_path.removeprefix("autogen_core")
    component_class = getattr(importlib.import_module(module_path), class_name, None)
    if not isinstance(component_class, type):
        raise TypeError(f"{provider} is not a class.")
    return component_class


def _summary_of(docstring: str | None) -> str | None:
    """The first paragraph of a class's docstring, as autogen-core's default description."""
    if not docstring:
        return None
    return docstring.strip().split("\n\n")[0].strip()
