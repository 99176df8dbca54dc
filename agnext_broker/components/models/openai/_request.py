"""What a chat completions request carries: messages, tools, tool choice, response format.

Everything here builds the plain JSON the API documents (dicts and lists), so it does not depend
on the ``openai`` package's type names, which change between its versions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from pydantic import BaseModel

from .._image import Image
from .._types import (
    AssistantMessage,
    FunctionExecutionResultMessage,
    LLMMessage,
    SystemMessage,
    UserMessage,
)

_VALID_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_INVALID_NAME_CHARACTERS = re.compile(r"[^a-zA-Z0-9_-]")


def assert_valid_name(name: str) -> str:
    """Refuse a name the API refuses (a message's source, a tool's name), with the reason.

    Raises:
        ValueError: the name has characters other than letters, digits, ``_`` and ``-``, or
            more than 64 of them.
    """
    if _VALID_NAME.fullmatch(name) is None:
        if len(name) > 64:
            raise ValueError(f"Invalid name: {name}. Name must be less than 64 characters.")
        raise ValueError(f"Invalid name: {name}. Only letters, numbers, '_' and '-' are allowed.")
    return name


def normalize_name(name: str) -> str:
    """A name a model sent back, made valid (models sometimes ignore the format)."""
    return _INVALID_NAME_CHARACTERS.sub("_", name)[:64]


def merge_system_messages(messages: Sequence[LLMMessage]) -> list[LLMMessage]:
    """Consecutive system messages as one, for models that read a single system message.

    Raises:
        ValueError: system messages are not consecutive (they cannot be merged into one).
    """
    merged: list[LLMMessage] = []
    system_parts: list[str] = []
    position = -1
    last = -2
    for index, message in enumerate(messages):
        if isinstance(message, SystemMessage):
            if system_parts and last != index - 1:
                raise ValueError(
                    "Multiple and Not continuous system messages are not supported if "
                    "model_info['multiple_system_messages'] is False"
                )
            if not system_parts:
                position = len(merged)
            system_parts.append(message.content)
            last = index
        else:
            merged.append(message)
    if system_parts:
        merged.insert(position, SystemMessage(content="\n".join(system_parts)))
    return merged


def to_openai_messages(
    message: LLMMessage, *, add_name_prefixes: bool = False, include_name: bool = True
) -> list[dict[str, Any]]:
    """One of our messages as the API's messages (a tool result message becomes one per call).

    ``add_name_prefixes`` starts a user message's text with ``"<source> said:\\n"``;
    ``include_name`` sends the source as the message's ``name`` (some servers refuse it).
    """
    if isinstance(message, SystemMessage):
        return [{"role": "system", "content": message.content}]
    if isinstance(message, UserMessage):
        return [_user_message(message, add_name_prefixes, include_name)]
    if isinstance(message, AssistantMessage):
        return [_assistant_message(message, include_name)]
    if isinstance(message, FunctionExecutionResultMessage):
        return [
            {"role": "tool", "content": result.content, "tool_call_id": result.call_id}
            for result in message.content
        ]
    raise TypeError(f"Not an LLM message: {type(message).__qualname__}")


def _named(param: dict[str, Any], source: str, include_name: bool) -> dict[str, Any]:
    if include_name:
        param["name"] = assert_valid_name(source)
    return param


def _user_message(message: UserMessage, prefix: bool, include_name: bool) -> dict[str, Any]:
    said = f"{message.source} said:\n" if prefix else ""
    if isinstance(message.content, str):
        return _named(
            {"role": "user", "content": said + message.content}, message.source, include_name
        )
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, str):
            parts.append({"type": "text", "text": said + part})
            said = ""
        elif isinstance(part, Image):
            parts.append(part.to_openai_format())
        else:
            raise ValueError(f"Unknown content type: {part!r}")
    return _named({"role": "user", "content": parts}, message.source, include_name)


def _assistant_message(message: AssistantMessage, include_name: bool) -> dict[str, Any]:
    if isinstance(message.content, str):
        return _named(
            {"role": "assistant", "content": message.content}, message.source, include_name
        )
    param: dict[str, Any] = {
        "role": "assistant",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.content
        ],
    }
    if message.thought is not None:
        param["content"] = message.thought
    return _named(param, message.source, include_name)


def tool_schema_of(tool: Any) -> Mapping[str, Any]:
    """The ``ToolSchema`` of a ``Tool`` (anything with a ``schema`` mapping) or of a schema dict.

    Raises:
        TypeError: ``tool`` is neither.
    """
    schema = tool if isinstance(tool, Mapping) else getattr(tool, "schema", None)
    if not isinstance(schema, Mapping) or not isinstance(schema.get("name"), str):
        raise TypeError(
            "A tool must be a Tool (with a schema) or a ToolSchema dict with a name, "
            f"not {type(tool).__qualname__}"
        )
    return cast(Mapping[str, Any], schema)


def to_openai_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Tools (or their schemas) as the API's function tools."""
    converted: list[dict[str, Any]] = []
    for tool in tools:
        schema = tool_schema_of(tool)
        converted.append(
            {
                "type": "function",
                "function": {
                    "name": assert_valid_name(schema["name"]),
                    "description": schema.get("description", ""),
                    "parameters": dict(schema.get("parameters", {})),
                    "strict": bool(schema.get("strict", False)),
                },
            }
        )
    return converted


def to_openai_tool_choice(tool_choice: Any, tools: Sequence[Any]) -> Any:
    """``"auto"``, ``"required"``, ``"none"``, or a tool the model must call, in the API's form.

    Raises:
        ValueError: a tool is named that is not among ``tools``, or ``tool_choice`` is neither
            one of the three words nor a tool.
    """
    if tool_choice in ("auto", "required", "none"):
        return tool_choice
    try:
        name = tool_schema_of(tool_choice)["name"]
    except TypeError:
        raise ValueError(
            "tool_choice must be a Tool object, 'auto', 'required', or 'none', "
            f"got {type(tool_choice)}"
        ) from None
    if not tools:
        raise ValueError("tool_choice specified but no tools provided")
    if name not in {tool_schema_of(tool)["name"] for tool in tools}:
        raise ValueError(f"tool_choice references '{name}' but it's not in the provided tools")
    return {"type": "function", "function": {"name": name}}


def json_schema_response_format(model: type[BaseModel]) -> dict[str, Any]:
    """The ``response_format`` that asks for output of ``model``'s JSON schema, strictly.

    The schema is made strict as OpenAI's structured outputs require (every property required,
    no additional properties, references with siblings inlined); servers that only follow a
    schema (vLLM, Ollama, llama.cpp) accept it as well.
    """
    schema = model.model_json_schema()
    definitions = schema.get("$defs", {})
    return {
        "type": "json_schema",
        "json_schema": {
            "name": assert_valid_name(normalize_name(model.__name__)),
            "schema": _strict(schema, definitions),
            "strict": True,
        },
    }


def _strict(node: Any, definitions: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_strict(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("$ref")
    if isinstance(reference, str) and len(node) > 1:
        # OpenAI refuses a $ref with siblings (pydantic writes one for a described field)
        target = definitions.get(reference.removeprefix("#/$defs/"), {})
        node = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
    strict = {
        key: (
            {name: _strict(value, definitions) for name, value in child.items()}
            if key in ("properties", "$defs") and isinstance(child, dict)
            else _strict(child, definitions)
        )
        for key, child in node.items()
        if not (key == "default" and child is None)
    }
    if strict.get("type") == "object" or "properties" in strict:
        strict.setdefault("additionalProperties", False)
        strict["required"] = list(strict.get("properties", {}))
    return strict
