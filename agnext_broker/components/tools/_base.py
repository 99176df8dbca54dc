"""The tool interface, its JSON schema, and BaseTool, as in autogen-core."""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Generic, NotRequired, Protocol, TypeVar, runtime_checkable

from opentelemetry import trace
from pydantic import BaseModel

# pydantic (a dependency, which requires typing_extensions) validates only typing_extensions'
# TypedDict before Python 3.12, and a ToolSchema may sit in a message or an agent's state.
from typing_extensions import TypedDict

from ..._constants import EVENT_LOGGER_NAME
from ...base import CancellationToken
from .._component_config import ComponentBase
from ._signature import inline_refs, normalize_annotated_type

event_logger = logging.getLogger(EVENT_LOGGER_NAME)
tracer = trace.get_tracer("agnext_broker")


class ParametersSchema(TypedDict):
    type: str
    properties: dict[str, Any]
    required: NotRequired[Sequence[str]]
    additionalProperties: NotRequired[bool]


class ToolSchema(TypedDict):
    """What a model is told about a tool: the OpenAI function definition's fields."""

    parameters: NotRequired[ParametersSchema]
    name: str
    description: NotRequired[str]
    strict: NotRequired[bool]


class ToolOverride(BaseModel):
    """A name and/or description to show a tool under, in place of its own."""

    name: str | None = None
    description: str | None = None


@runtime_checkable
class Tool(Protocol):
    """What a model can call: a name, a description, a JSON schema and :meth:`run_json`."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def schema(self) -> ToolSchema: ...

    def args_type(self) -> type[BaseModel]: ...

    def return_type(self) -> type[Any]: ...

    def state_type(self) -> type[BaseModel] | None: ...

    def return_value_as_string(self, value: Any) -> str: ...

    async def run_json(
        self,
        args: Mapping[str, Any],
        cancellation_token: CancellationToken,
        call_id: str | None = None,
    ) -> Any: ...

    async def save_state_json(self) -> Mapping[str, Any]: ...

    async def load_state_json(self, state: Mapping[str, Any]) -> None: ...


ArgsT = TypeVar("ArgsT", bound=BaseModel, contravariant=True)
ReturnT = TypeVar("ReturnT", bound=BaseModel, covariant=True)
StateT = TypeVar("StateT", bound=BaseModel)


class BaseTool(ABC, Tool, Generic[ArgsT, ReturnT], ComponentBase[BaseModel]):
    """A tool whose arguments are a pydantic model: subclasses implement :meth:`run`.

    Args:
        args_type: the arguments' model; the tool's JSON schema is derived from it.
        return_type: what :meth:`run` returns.
        name: the tool's name, as the model calls it.
        description: what the tool does, for the model.
        strict: promise a schema that OpenAI's strict mode accepts: every argument required
            (no defaults) and no other properties; :attr:`schema` raises ``ValueError`` if not.
    """

    component_type = "tool"

    def __init__(
        self,
        args_type: type[ArgsT],
        return_type: type[ReturnT],
        name: str,
        description: str,
        strict: bool = False,
    ) -> None:
        self._args_type = args_type
        self._return_type: type[Any] = normalize_annotated_type(return_type)
        self._name = name
        self._description = description
        self._strict = strict

    @property
    def schema(self) -> ToolSchema:
        """The tool's schema, with ``$ref`` definitions inlined (models often ignore them)."""
        model_schema = inline_refs(self._args_type.model_json_schema())
        parameters = ParametersSchema(
            type="object",
            properties=model_schema.get("properties", {}),
            required=model_schema.get("required", []),
            additionalProperties=model_schema.get("additionalProperties", False),
        )
        if self._strict and set(parameters["required"]) != set(parameters["properties"]):
            raise ValueError(
                "Strict mode is enabled, but not all input arguments are marked as required. "
                "Default arguments are not allowed in strict mode."
            )
        if self._strict and parameters["additionalProperties"]:
            raise ValueError(
                "Strict mode is enabled but additional argument is also enabled. This is not "
                "allowed in strict mode."
            )
        return ToolSchema(
            name=self._name,
            description=self._description,
            parameters=parameters,
            strict=self._strict,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    def args_type(self) -> type[BaseModel]:
        return self._args_type

    def return_type(self) -> type[Any]:
        return self._return_type

    def state_type(self) -> type[BaseModel] | None:
        return None

    def return_value_as_string(self, value: Any) -> str:
        """A pydantic model as its JSON, anything else by ``str()``."""
        if isinstance(value, BaseModel):
            dumped = value.model_dump()
            return json.dumps(dumped) if isinstance(dumped, dict) else str(dumped)
        return str(value)

    @abstractmethod
    async def run(self, args: ArgsT, cancellation_token: CancellationToken) -> ReturnT: ...

    async def run_json(
        self,
        args: Mapping[str, Any],
        cancellation_token: CancellationToken,
        call_id: str | None = None,
    ) -> Any:
        """Validate ``args`` against :meth:`args_type` and :meth:`run` the tool.

        Raises:
            pydantic.ValidationError: the arguments do not fit the schema.
        """
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": self._name,
            "gen_ai.tool.description": self._description,
        }
        if call_id is not None:
            attributes["gen_ai.tool.call.id"] = call_id
        with tracer.start_as_current_span(f"execute_tool {self._name}", attributes=attributes):
            value = await self.run(self._args_type.model_validate(args), cancellation_token)
        if event_logger.isEnabledFor(logging.INFO):
            event_logger.info(
                json.dumps(
                    {
                        "type": "ToolCall",
                        "tool_name": self._name,
                        "arguments": dict(args),
                        "result": self.return_value_as_string(value),
                    },
                    default=str,
                )
            )
        return value

    async def save_state_json(self) -> Mapping[str, Any]:
        return {}

    async def load_state_json(self, state: Mapping[str, Any]) -> None:
        pass


class BaseToolWithState(BaseTool[ArgsT, ReturnT], ABC, Generic[ArgsT, ReturnT, StateT]):
    """A tool with state that :meth:`save_state_json` saves as its ``state_type``'s JSON."""

    def __init__(
        self,
        args_type: type[ArgsT],
        return_type: type[ReturnT],
        state_type: type[StateT],
        name: str,
        description: str,
    ) -> None:
        super().__init__(args_type, return_type, name, description)
        self._state_type = state_type

    def state_type(self) -> type[BaseModel] | None:
        return self._state_type

    @abstractmethod
    def save_state(self) -> StateT: ...

    @abstractmethod
    def load_state(self, state: StateT) -> None: ...

    async def save_state_json(self) -> Mapping[str, Any]:
        return self.save_state().model_dump(mode="json")

    async def load_state_json(self, state: Mapping[str, Any]) -> None:
        self.load_state(self._state_type.model_validate(state))
