"""A function's signature as a pydantic model of its arguments, and JSON schema helpers."""

from __future__ import annotations

import copy
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, cast, get_args, get_origin

from pydantic import BaseModel, Field, create_model
from pydantic_core import PydanticUndefined

CANCELLATION_TOKEN_PARAMETER = "cancellation_token"


def get_typed_signature(call: Callable[..., Any]) -> inspect.Signature:
    """``call``'s signature with its annotations resolved (string annotations included)."""
    signature = inspect.signature(call)
    target: Any = call.func if isinstance(call, functools.partial) else call
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(target, "__call__", target)  # noqa: B004 (a callable object's method)
    hints = typing.get_type_hints(target, include_extras=True)
    parameters = [
        parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
        for parameter in signature.parameters.values()
    ]
    return_annotation = hints.get("return", inspect.Signature.empty)
    return inspect.Signature(parameters, return_annotation=return_annotation)


def normalize_annotated_type(type_hint: Any) -> Any:
    """``Annotated[T, ...]`` as ``T``; any other type as itself."""
    if get_origin(type_hint) is Annotated:
        return get_args(type_hint)[0]
    return type_hint


def description_of(name: str, annotation: Any) -> str:
    """The string an ``Annotated[T, "description"]`` carries; else the parameter's name."""
    if get_origin(annotation) is Annotated:
        described = get_args(annotation)[1]
        if not isinstance(described, str):
            raise ValueError(
                f"Invalid description {described} for parameter {name}, should be a string."
            )
        return described
    return name


def args_base_model_from_signature(name: str, signature: inspect.Signature) -> type[BaseModel]:
    """A pydantic model with one field per parameter (but ``cancellation_token``): its type,
    its default, and its ``Annotated`` description."""
    fields: dict[str, Any] = {}
    for parameter_name, parameter in signature.parameters.items():
        if parameter_name == CANCELLATION_TOKEN_PARAMETER:
            continue  # passed by the tool itself, never by the model
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ValueError(f"{name}: *{parameter_name} cannot be given by a model")
        if parameter.annotation is inspect.Parameter.empty:
            raise ValueError(f"{name}: the parameter {parameter_name!r} has no annotation")
        default = (
            PydanticUndefined if parameter.default is inspect.Parameter.empty else parameter.default
        )
        description = description_of(parameter_name, parameter.annotation)
        fields[parameter_name] = (
            normalize_annotated_type(parameter.annotation),
            Field(default=default, description=description),
        )
    return cast(type[BaseModel], create_model(name, **fields))


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each ``{"$ref": "#/$defs/X"}`` replaced by the definition (keys beside
    the reference, such as its description, kept), and ``$defs`` removed.

    Raises:
        ValueError: a definition refers to itself (a recursive model cannot be inlined).
    """
    definitions: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            key = reference.removeprefix("#/$defs/")
            if key in seen:
                raise ValueError(f"The schema of {key} refers to itself: it cannot be inlined.")
            target = resolve(copy.deepcopy(definitions[key]), (*seen, key))
            siblings = {k: resolve(v, seen) for k, v in node.items() if k != "$ref"}
            return {**target, **siblings}
        return {k: resolve(v, seen) for k, v in node.items() if k != "$defs"}

    return cast(dict[str, Any], resolve(schema, ()))
