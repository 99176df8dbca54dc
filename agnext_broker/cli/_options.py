"""Command-line flags made from ``BrokerSettings``: one ``--flag`` per field, documented with its
``AGNEXT_*`` variable, so that the command line, the environment and the settings model cannot
drift apart.

A flag left out is ``None`` and does not override: the value then comes from the environment
(or a ``*_FILE`` secret), else the default (``BrokerSettings.from_env``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic.fields import FieldInfo

from ..application.broker import BrokerSettings, SettingsError
from ..application.broker._settings import redact, variable

F = TypeVar("F", bound=Callable[..., Any])

# What a client of running workers needs: where the servers are and how to reach them.
CONNECTION = (
    "amqp_url",
    "redis_url",
    "namespace",
    "connect_timeout",
    "rpc_timeout",
    "publish_timeout",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
)
ALL = tuple(BrokerSettings.model_fields)


def flag(name: str) -> str:
    """The flag of setting ``name``: ``amqp_url`` -> ``--amqp-url``."""
    return "--" + name.replace("_", "-")


def _click_type(annotation: Any) -> tuple[Any, bool]:
    """The click type of a field's annotation, and whether it is a boolean switch."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _click_type(args[0])
    if origin is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)]), False
    if annotation is bool:
        return bool, True
    if annotation is int:
        return int, False
    if annotation is float:
        return float, False
    if annotation is Path:
        return click.Path(path_type=Path, dir_okay=False), False
    return str, False


def _default_shown(name: str, field: FieldInfo) -> str:
    if name == "worker_id":
        return ""  # its description says: random
    default = field.get_default(call_default_factory=False)
    if hasattr(default, "get_secret_value"):
        return redact(default.get_secret_value())
    return "" if default is None else str(default)


def _option(name: str, field: FieldInfo) -> Callable[[F], F]:
    kind, switch = _click_type(field.annotation)
    default = _default_shown(name, field)
    described = field.description or name.replace("_", " ")
    help_text = f"{described} [{variable(name)}" + (f"; default {default}]" if default else "]")
    if switch:
        names = f"{flag(name)}/--no-{flag(name)[2:]}"
        return click.option(names, name, default=None, help=help_text)
    return click.option(flag(name), name, type=kind, default=None, help=help_text)


def settings_options(names: Iterable[str] = ALL) -> Callable[[F], F]:
    """Decorate a command with the flags of the settings ``names`` (in the model's order)."""
    wanted = set(names)
    fields = [(n, f) for n, f in BrokerSettings.model_fields.items() if n in wanted]

    def decorate(command: F) -> F:
        for name, field in reversed(fields):
            command = _option(name, field)(command)
        return command

    return decorate


def pop_settings(values: dict[str, Any], names: Iterable[str] = ALL) -> dict[str, Any]:
    """Take the settings flags out of a command's keyword arguments."""
    return {name: values.pop(name) for name in list(names) if name in values}


def load_settings(flags: Mapping[str, Any], **fixed: Any) -> BrokerSettings:
    """Settings from the flags given, else the environment, else the defaults.

    Raises:
        click.UsageError: a value the settings refuse, naming the flag or variable.
    """
    given = {k: v for k, v in flags.items() if v is not None} | fixed
    try:
        return BrokerSettings.from_env(**given)
    except SettingsError as e:
        message = str(e)
        for name in given:
            message = message.replace(f"{name}=", f"{flag(name)} ")
        raise click.UsageError(message) from None
