"""Settings of the broker runtime: arguments, else ``AGNEXT_*`` environment variables."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from ._names import DEFAULT_NAMESPACE
from ._routing import check_partitions

QueueType = Literal["quorum", "classic"]


def redact(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _read_secret_file(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def _env(name: str, default: str) -> str:
    """``AGNEXT_<NAME>``, else the content of the file named by ``AGNEXT_<NAME>_FILE``."""
    value = os.environ.get(f"AGNEXT_{name}")
    if value is not None:
        return value
    secret_file = os.environ.get(f"AGNEXT_{name}_FILE")
    return _read_secret_file(secret_file) if secret_file else default


def _parse(name: str, raw: str, default: Any) -> Any:
    variable = f"AGNEXT_{name.upper()}"
    if isinstance(default, bool):
        if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise ValueError(f"{variable}={raw!r}: use true or false.")
        return raw.lower() in ("1", "true", "yes")
    if isinstance(default, int | float):
        try:
            return type(default)(raw)
        except ValueError:
            kind = "a whole number" if isinstance(default, int) else "a number"
            raise ValueError(f"{variable}={raw!r}: use {kind}, e.g. {default!r}.") from None
    return raw


@dataclass(frozen=True)
class BrokerSettings:
    """How a broker runtime connects and behaves.

    Every field can come from the environment variable ``AGNEXT_<FIELD NAME IN CAPITALS>``
    (``AGNEXT_AMQP_URL``, ``AGNEXT_PARTITIONS``, ``AGNEXT_RPC_TIMEOUT``...); the URLs may also
    come from a file named by ``AGNEXT_AMQP_URL_FILE`` / ``AGNEXT_REDIS_URL_FILE`` (container
    secrets).
    """

    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    redis_url: str = "redis://localhost:6379/0"
    namespace: str = DEFAULT_NAMESPACE
    partitions: int = 16
    queue_type: QueueType = "quorum"
    prefetch: int = 64
    rpc_timeout: float = 30.0
    publish_timeout: float = 30.0
    connect_timeout: float = 10.0
    idle_timeout: float = 300.0
    drain_timeout: float = 30.0
    heartbeat_interval: float = 1.0
    worker_expiry: float = 5.0
    delivery_limit: int = 5
    # True: partition queues are declared without dead-lettering and delivery limit, which a
    # RabbitMQ policy on ``^<ns>\.agent\.`` then sets (declared arguments override policies).
    dead_letter_by_policy: bool = False
    handler_attempts: int = 3
    max_message_bytes: int = 4 * 1024 * 1024
    # How long (seconds) an agent remembers the messages it applied, and their responses, so
    # that a message sent again (a caller's retry, a redelivery) is not applied twice; at most
    # the last ``applied_ids_kept`` ids and ``responses_kept`` responses per agent.
    dedup_window: float = 600.0
    applied_ids_kept: int = 10_000
    responses_kept: int = 1_000
    # Messages this process has published and the broker has not yet confirmed; RPCs its
    # callers wait for (outside handlers). Past either, a send or publish waits its turn.
    max_in_flight_publishes: int = 512
    max_pending_rpcs: int = 1_024
    worker_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        check_partitions(self.partitions)
        if self.queue_type not in ("quorum", "classic"):
            raise ValueError(f"Invalid queue type {self.queue_type!r}: use quorum or classic.")
        at_least_one = (
            "prefetch",
            "delivery_limit",
            "handler_attempts",
            "max_message_bytes",
            "applied_ids_kept",
            "responses_kept",
            "max_in_flight_publishes",
            "max_pending_rpcs",
        )
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (AGNEXT_{name.upper()}).")
        positive = (
            "rpc_timeout",
            "publish_timeout",
            "connect_timeout",
            "drain_timeout",
            "heartbeat_interval",
            "dedup_window",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0 (AGNEXT_{name.upper()}).")
        if self.worker_expiry <= self.heartbeat_interval:
            raise ValueError(
                "worker_expiry must be longer than heartbeat_interval "
                "(AGNEXT_WORKER_EXPIRY, AGNEXT_HEARTBEAT_INTERVAL)."
            )
        if not self.worker_id or not all(c.isalnum() or c in "-_." for c in self.worker_id):
            raise ValueError(
                f"Invalid worker id {self.worker_id!r} (AGNEXT_WORKER_ID): use letters, digits, "
                "'-', '_' and '.'."
            )

    @classmethod
    def from_env(cls, **overrides: Any) -> BrokerSettings:
        """Defaults, overridden by ``AGNEXT_*`` variables, overridden by ``overrides``."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = _env(f.name.upper(), "")
            if raw:
                default = f.default if f.name != "worker_id" else ""
                values[f.name] = _parse(f.name, raw, default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_changes(self, **changes: Any) -> BrokerSettings:
        return replace(self, **changes)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={redact(v) if f.name.endswith('_url') else v!r}"
            for f in fields(self)
            for v in [getattr(self, f.name)]
        )
        return f"BrokerSettings({shown})"
