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
    if isinstance(default, bool):
        if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise ValueError(f"AGNEXT_{name.upper()}={raw!r}: use true or false.")
        return raw.lower() in ("1", "true", "yes")
    if isinstance(default, int | float):
        return type(default)(raw)
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
    applied_ids_kept: int = 64
    responses_kept: int = 8
    worker_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        check_partitions(self.partitions)
        if self.queue_type not in ("quorum", "classic"):
            raise ValueError(f"Invalid queue type {self.queue_type!r}: use quorum or classic.")
        for name in ("prefetch", "delivery_limit", "handler_attempts", "max_message_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1.")
        if self.worker_expiry <= self.heartbeat_interval:
            raise ValueError("worker_expiry must be longer than heartbeat_interval.")

    @classmethod
    def from_env(cls, **overrides: Any) -> BrokerSettings:
        """Defaults, overridden by ``AGNEXT_*`` variables, overridden by ``overrides``."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "worker_id":
                continue
            raw = _env(f.name.upper(), "")
            if raw:
                values[f.name] = _parse(f.name, raw, f.default)
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
