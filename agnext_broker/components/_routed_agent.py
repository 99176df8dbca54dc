"""RoutedAgent: handlers chosen by the message's type, declared with decorators."""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from functools import wraps
from typing import (
    Any,
    Literal,
    Protocol,
    TypeVar,
    cast,
    get_type_hints,
    overload,
    runtime_checkable,
)

from ..base import BaseAgent, CantHandleException, MessageContext, MessageSerializer
from ..base import try_get_known_serializers_for_type as known_serializers
from ..base._exceptions import SerializationError
from ..base._serialization import remember_message_class
from ._type_hints import AnyType, types_of_annotation

logger = logging.getLogger("agnext_broker")

AgentT = TypeVar("AgentT")
ReceivesT = TypeVar("ReceivesT")
ProducesT = TypeVar("ProducesT", covariant=True)

HandlerKind = Literal["any", "event", "rpc"]
Router = Callable[[Any, MessageContext], bool]


@runtime_checkable
class MessageHandler(Protocol[AgentT, ReceivesT, ProducesT]):  # type: ignore[misc]
    target_types: Sequence[type]
    produces_types: Sequence[type]
    is_message_handler: Literal[True]
    router: Callable[[ReceivesT, MessageContext], bool]

    @staticmethod
    async def __call__(
        agent_instance: AgentT, message: ReceivesT, ctx: MessageContext
    ) -> ProducesT: ...


HandlerFunc = Callable[[AgentT, ReceivesT, MessageContext], Coroutine[Any, Any, ProducesT]]


def _router(kind: HandlerKind, match: Router | None) -> Router:
    if kind == "event":
        return lambda m, ctx: not ctx.is_rpc and (match is None or match(m, ctx))
    if kind == "rpc":
        return lambda m, ctx: ctx.is_rpc and (match is None or match(m, ctx))
    return match or (lambda _m, _ctx: True)


def _make_handler(
    func: HandlerFunc[AgentT, ReceivesT, ProducesT],
    kind: HandlerKind,
    strict: bool,
    match: Router | None,
) -> MessageHandler[AgentT, ReceivesT, ProducesT]:
    hints = get_type_hints(func)
    name = func.__qualname__
    params = list(inspect.signature(func).parameters)
    if len(params) != 3:
        raise AssertionError(f"{name}: a handler takes (self, message, ctx).")
    if params[1] not in hints:
        raise AssertionError(f"{name}: annotate the message parameter with the message type.")
    if "return" not in hints:
        raise AssertionError(f"{name}: annotate the return type (use None for events).")
    target_types = types_of_annotation(hints[params[1]])
    if target_types is None:
        raise AssertionError(f"{name}: the message annotation must be a class or a union.")
    return_types = types_of_annotation(hints["return"])
    if return_types is None:
        raise AssertionError(f"{name}: the return annotation must be a class, a union or None.")
    for declared in (*target_types, *return_types):
        remember_message_class(declared)
    accepts = frozenset(target_types)
    returns_any = AnyType in return_types
    produces = frozenset(return_types)
    event_only = kind == "event"

    @wraps(func)
    async def wrapper(self: AgentT, message: ReceivesT, ctx: MessageContext) -> ProducesT:
        if type(message) not in accepts:
            if strict:
                raise CantHandleException(
                    f"{name} handles {sorted(t.__name__ for t in accepts)}, "
                    f"not {type(message).__name__}."
                )
            logger.warning("%s received unexpected type %s", name, type(message).__name__)
        result = await func(self, message, ctx)
        if event_only:
            if result is not None:
                if strict:
                    raise ValueError(
                        f"Event handler {name} returned {result!r}; it must return None."
                    )
                logger.warning("event handler %s returned a value; it is ignored", name)
            return cast(ProducesT, None)
        if not returns_any and type(result) not in produces:
            if strict:
                raise ValueError(
                    f"{name} returned {type(result).__name__}, which is not among its declared "
                    f"return types {sorted(t.__name__ for t in produces)}."
                )
            logger.warning("%s returned undeclared type %s", name, type(result).__name__)
        return result

    handler = cast(MessageHandler[AgentT, ReceivesT, ProducesT], wrapper)
    handler.target_types = list(target_types)
    handler.produces_types = list(return_types)
    handler.is_message_handler = True
    handler.router = _router(kind, match)
    return handler


Decorator = Callable[
    [HandlerFunc[AgentT, ReceivesT, ProducesT]], MessageHandler[AgentT, ReceivesT, ProducesT]
]


def _decorate(
    func: HandlerFunc[AgentT, ReceivesT, ProducesT] | None,
    kind: HandlerKind,
    strict: bool,
    match: Router | None,
) -> Decorator[AgentT, ReceivesT, ProducesT] | MessageHandler[AgentT, ReceivesT, ProducesT]:
    def decorator(
        f: HandlerFunc[AgentT, ReceivesT, ProducesT],
    ) -> MessageHandler[AgentT, ReceivesT, ProducesT]:
        return _make_handler(f, kind, strict, match)

    if func is None:
        return decorator
    if callable(func):
        return decorator(func)
    raise ValueError("Invalid arguments: use @decorator or @decorator(match=..., strict=...).")


@overload
def message_handler(
    func: HandlerFunc[AgentT, ReceivesT, ProducesT],
) -> MessageHandler[AgentT, ReceivesT, ProducesT]: ...


@overload
def message_handler(
    func: None = None, *, match: None = ..., strict: bool = ...
) -> Callable[
    [Callable[[AgentT, ReceivesT, MessageContext], Coroutine[Any, Any, ProducesT]]],
    MessageHandler[AgentT, ReceivesT, ProducesT],
]: ...


@overload
def message_handler(
    func: None = None,
    *,
    match: Callable[[ReceivesT, MessageContext], bool],
    strict: bool = ...,
) -> Callable[
    [Callable[[AgentT, ReceivesT, MessageContext], Coroutine[Any, Any, ProducesT]]],
    MessageHandler[AgentT, ReceivesT, ProducesT],
]: ...


def message_handler(
    func: HandlerFunc[AgentT, ReceivesT, ProducesT] | None = None,
    *,
    strict: bool = True,
    match: Callable[[ReceivesT, MessageContext], bool] | None = None,
) -> Decorator[AgentT, ReceivesT, ProducesT] | MessageHandler[AgentT, ReceivesT, ProducesT]:
    """Mark a method ``async def h(self, message: T, ctx: MessageContext) -> R`` as the handler
    of ``T`` (a union handles each member) for both events and RPCs.

    Args:
        strict: raise :class:`CantHandleException` on an unexpected input type and
            ``ValueError`` on an undeclared return type (else only log a warning).
        match: secondary routing among handlers of one type; handlers are tried in the
            alphabetical order of their method names and the first that matches is called.
    """
    return _decorate(func, "any", strict, cast(Router | None, match))


@overload
def event(
    func: HandlerFunc[AgentT, ReceivesT, None],
) -> MessageHandler[AgentT, ReceivesT, None]: ...


@overload
def event(
    func: None = None, *, match: None = ..., strict: bool = ...
) -> Callable[
    [Callable[[AgentT, ReceivesT, MessageContext], Coroutine[Any, Any, None]]],
    MessageHandler[AgentT, ReceivesT, None],
]: ...


@overload
def event(
    func: None = None,
    *,
    match: Callable[[ReceivesT, MessageContext], bool],
    strict: bool = ...,
) -> Callable[
    [Callable[[AgentT, ReceivesT, MessageContext], Coroutine[Any, Any, None]]],
    MessageHandler[AgentT, ReceivesT, None],
]: ...


def event(
    func: HandlerFunc[AgentT, ReceivesT, None] | None = None,
    *,
    strict: bool = True,
    match: Callable[[ReceivesT, MessageContext], bool] | None = None,
) -> Decorator[AgentT, ReceivesT, None] | MessageHandler[AgentT, ReceivesT, None]:
    """Like :func:`message_handler`, for published events only; the handler returns None."""
    return _decorate(func, "event", strict, cast(Router | None, match))


@overload
def rpc(
    func: HandlerFunc[AgentT, ReceivesT, ProducesT],
) -> MessageHandler[AgentT, ReceivesT, ProducesT]: ...


@overload
def rpc(
    func: None = None, *, match: None = ..., strict: bool = ...
) -> Callable[
    [Callable[[AgentT, ReceivesT, MessageContext], Coroutine[Any, Any, ProducesT]]],
    MessageHandler[AgentT, ReceivesT, ProducesT],
]: ...


@overload
def rpc(
    func: None = None,
    *,
    match: Callable[[ReceivesT, MessageContext], bool],
    strict: bool = ...,
) -> Callable[
    [Callable[[AgentT, ReceivesT, MessageContext], Coroutine[Any, Any, ProducesT]]],
    MessageHandler[AgentT, ReceivesT, ProducesT],
]: ...


def rpc(
    func: HandlerFunc[AgentT, ReceivesT, ProducesT] | None = None,
    *,
    strict: bool = True,
    match: Callable[[ReceivesT, MessageContext], bool] | None = None,
) -> Decorator[AgentT, ReceivesT, ProducesT] | MessageHandler[AgentT, ReceivesT, ProducesT]:
    """Like :func:`message_handler`, for direct messages (``send_message``) only."""
    return _decorate(func, "rpc", strict, cast(Router | None, match))


class RoutedAgent(BaseAgent):
    """An agent whose messages go to the decorated handler of their type.

    A message with no matching handler goes to :meth:`on_unhandled_message`.
    """

    def __init__(self, description: str) -> None:
        self._handlers = self._handler_table()
        super().__init__(description)

    @classmethod
    def _handler_table(cls) -> dict[type, list[MessageHandler[Any, Any, Any]]]:
        table = cls.__dict__.get("_agnext_handler_table")
        if table is None:
            table = defaultdict(list)
            for handler in cls._discover_handlers():
                for target_type in handler.target_types:
                    table[target_type].append(handler)
            table = dict(table)
            setattr(cls, "_agnext_handler_table", table)  # noqa: B010 (cached per class)
        return cast(dict[type, list[MessageHandler[Any, Any, Any]]], table)

    async def on_message_impl(self, message: Any, ctx: MessageContext) -> Any:
        handlers = self._handlers.get(type(message))
        if handlers is not None:
            for handler in handlers:
                if handler.router(message, ctx):
                    return await handler(self, message, ctx)
        return await self.on_unhandled_message(message, ctx)

    async def on_unhandled_message(self, message: Any, ctx: MessageContext) -> None:
        """Called for a message no handler accepts; the default logs it."""
        logger.info("%s has no handler for %s", type(self).__name__, type(message).__name__)

    @classmethod
    def _discover_handlers(cls) -> Sequence[MessageHandler[Any, Any, Any]]:
        handlers: list[MessageHandler[Any, Any, Any]] = []
        for attr in dir(cls):
            candidate = getattr(cls, attr, None)
            if callable(candidate) and getattr(candidate, "is_message_handler", False):
                handlers.append(cast(MessageHandler[Any, Any, Any], candidate))
        return handlers

    @classmethod
    def _handles_types(cls) -> list[tuple[type[Any], list[MessageSerializer[Any]]]]:
        found: list[tuple[type[Any], list[MessageSerializer[Any]]]] = list(
            cls.internal_extra_handles_types
        )
        for handler in cls._discover_handlers():
            for target_type in handler.target_types:
                serializers = known_serializers(target_type)
                if not serializers:
                    raise SerializationError(
                        f"{cls.__qualname__}.{getattr(handler, '__name__', '?')} handles "
                        f"{getattr(target_type, '__qualname__', target_type)!s}, which cannot be "
                        "serialized: make it a pydantic model or a dataclass."
                    )
                found.append((target_type, serializers))
        return found
