"""Settings of the broker runtime: arguments, else ``AGNEXT_*`` environment variables, else the
file named by ``AGNEXT_<NAME>_FILE`` (container secrets), else the defaults.

A pydantic-settings model: every field is validated (a bad value is refused with the variable
that gave it, ``AGNEXT_PARTITIONS='abc': use a whole number``), the URLs are secrets
(``SecretStr``: never shown by ``repr``, logged only with their password hidden), and the
command line derives one flag per field from the same model (``agnext_broker.cli``).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ...base import AgnextError
from ._names import DEFAULT_NAMESPACE
from ._routing import check_partitions

QueueType = Literal["quorum", "classic"]
ENV_PREFIX = "AGNEXT_"


class SettingsError(AgnextError, ValueError):
    """A setting has a value it cannot take; the message names the variable or argument."""


# Query parameters that carry a secret (redis-py takes ``?password=...`` as well as userinfo).
_SECRET_PARAMETER = re.compile(r"pass|secret|token", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL with its password, and the values of query parameters that hold secrets
    (``password``, ``token``...), replaced by ``***``. Something that does not even parse as a
    URL with a host loses everything before its last ``@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if not parts.netloc:
        return f"***@{url.rpartition('@')[2]}" if "@" in url else url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else netloc
    query = "&".join(
        f"{name}=***" if sep and _SECRET_PARAMETER.search(name) else f"{name}{sep}{value}"
        for field in parts.query.split("&")
        if field
        for name, sep, value in [field.partition("=")]
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def variable(name: str) -> str:
    """The environment variable of setting ``name``."""
    return f"{ENV_PREFIX}{name.upper()}"


class _SecretFiles(PydanticBaseSettingsSource):
    """``AGNEXT_<NAME>_FILE``: the setting is the content of that file (stripped), as container
    platforms mount secrets."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"{variable(field_name)}_FILE")
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as e:
            raise SettingsError(
                f"{variable(field_name)}_FILE={path!r}: cannot read it ({e.strerror or e})"
            ) from e

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[field_name] = value
        return values


class BrokerSettings(BaseSettings):
    """How a broker runtime connects and behaves.

    Every field can come from the environment variable ``AGNEXT_<FIELD NAME IN CAPITALS>``
    (``AGNEXT_AMQP_URL``, ``AGNEXT_PARTITIONS``, ``AGNEXT_RPC_TIMEOUT``...) or from a file named
    by ``AGNEXT_<NAME>_FILE``; arguments win over both.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True
    )

    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@localhost:5672/"),
        description="RabbitMQ URL (amqp:// or amqps://, with the vhost as its path)",
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://localhost:6379/0"), description="Redis URL (redis:// or rediss://)"
    )
    namespace: str = Field(DEFAULT_NAMESPACE, description="prefix of every queue, exchange and key")
    worker_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex[:12],
        description="this process's id, and the source of what it sends (default: random)",
    )
    partitions: int = Field(16, description="partition queues per new agent type (power of 2)")
    queue_type: QueueType = Field("quorum", description="partition queues: quorum or classic")
    prefetch: int = Field(64, ge=1, description="deliveries held per partition queue consumed")
    rpc_timeout: float = Field(30.0, gt=0, description="seconds a send waits for its response")
    publish_timeout: float = Field(
        30.0, gt=0, description="seconds a publish waits for its confirm"
    )
    connect_timeout: float = Field(10.0, gt=0, description="seconds start() tries to connect")
    idle_timeout: float = Field(300.0, gt=0, description="seconds before an idle agent is let go")
    drain_timeout: float = Field(30.0, gt=0, description="seconds a stopping worker drains")
    heartbeat_interval: float = Field(1.0, gt=0, description="seconds between heartbeats")
    worker_expiry: float = Field(5.0, gt=0, description="seconds without heartbeat: gone")
    delivery_limit: int = Field(5, ge=1, description="deliveries before RabbitMQ dead-letters")
    dead_letter_by_policy: bool = Field(
        False, description="leave dead-lettering and delivery limit to a RabbitMQ policy"
    )
    handler_attempts: int = Field(3, ge=1, description="runs of a failing event handler")
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1, description="largest message, bytes")
    dedup_window: float = Field(600.0, gt=0, description="seconds an applied message is known")
    applied_ids_kept: int = Field(10_000, ge=1, description="applied messages kept per agent")
    responses_kept: int = Field(1_000, ge=1, description="stored responses kept per agent")
    max_in_flight_publishes: int = Field(
        512, ge=1, description="messages waiting for the broker's confirm, per process"
    )
    max_pending_rpcs: int = Field(1_024, ge=1, description="RPCs its callers wait for")
    health_port: int = Field(
        0, ge=0, le=65535, description="port of /healthz, /readyz and /metrics (0: off)"
    )
    health_host: str = Field("0.0.0.0", description="address the health port listens on")
    tls_ca_file: Path | None = Field(None, description="CA certificate(s) to verify the servers")
    tls_cert_file: Path | None = Field(None, description="client certificate (mutual TLS)")
    tls_key_file: Path | None = Field(None, description="the client certificate's key")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _SecretFiles(settings_cls)

    @field_validator("partitions")
    @classmethod
    def _partitions(cls, value: int) -> int:
        return check_partitions(value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_" for c in value):
            raise ValueError(f"invalid namespace {value!r}: use letters, digits, '-' and '_'")
        return value

    @field_validator("worker_id")
    @classmethod
    def _worker_id(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_." for c in value):
            raise ValueError(f"invalid worker id {value!r}: use letters, digits, '-', '_', '.'")
        return value

    @model_validator(mode="after")
    def _liveness(self) -> BrokerSettings:
        if self.worker_expiry <= self.heartbeat_interval:
            raise ValueError(
                "worker_expiry must be longer than heartbeat_interval "
                f"({variable('worker_expiry')}, {variable('heartbeat_interval')})"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    @classmethod
    def from_env(cls, **overrides: Any) -> BrokerSettings:
        """Defaults, overridden by ``AGNEXT_*`` variables (and ``*_FILE`` secrets), overridden
        by ``overrides`` (those that are not ``None``).

        Raises:
            SettingsError: a value the setting cannot take, naming where it came from.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**given)
        except ValidationError as e:
            raise _settings_error(e, given) from None

    def with_changes(self, **changes: Any) -> BrokerSettings:
        """A copy with ``changes`` (validated; not read from the environment again)."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values.update(changes)
        try:
            return type(self).model_validate(values)
        except ValidationError as e:
            raise _settings_error(e, changes) from None

    @property
    def amqp(self) -> str:
        """The RabbitMQ URL (with its password: do not log it; :func:`redact` does)."""
        return self.amqp_url.get_secret_value()

    @property
    def redis(self) -> str:
        """The Redis URL (with its password: do not log it; :func:`redact` does)."""
        return self.redis_url.get_secret_value()

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={redact(value.get_secret_value())!r}"
            if isinstance(value, SecretStr)
            else f"{name}={value!r}"
            for name in type(self).model_fields
            for value in [getattr(self, name)]
        )
        return f"BrokerSettings({shown})"

    __str__ = __repr__


_KINDS = {
    "int_parsing": "use a whole number",
    "int_from_float": "use a whole number",
    "float_parsing": "use a number",
    "bool_parsing": "use true or false",
}


def _settings_error(error: ValidationError, given: dict[str, Any]) -> SettingsError:
    """One line per problem, each naming the argument or the variable it came from."""
    lines = []
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else ""
        value = problem.get("input")
        what = _KINDS.get(problem["type"], str(problem["msg"]).removeprefix("Value error, "))
        if not name:
            lines.append(what)
        elif name in given:
            lines.append(f"{name}={value!r}: {what}")
        elif os.environ.get(variable(name)) is not None:
            lines.append(f"{variable(name)}={os.environ[variable(name)]!r}: {what}")
        else:
            lines.append(f"{variable(name)}_FILE: {what}")
    return SettingsError("; ".join(lines))
