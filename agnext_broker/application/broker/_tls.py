"""TLS for the connections to RabbitMQ (``amqps://``) and Redis (``rediss://``): the servers are
verified against ``tls_ca_file`` (else the system's CAs), and ``tls_cert_file`` /
``tls_key_file`` give a client certificate for servers that ask for one (mutual TLS)."""

from __future__ import annotations

import ssl
from typing import Any

from ._settings import BrokerSettings, SettingsError


def tls_context(settings: BrokerSettings) -> ssl.SSLContext:
    """An SSL context verifying the server (and presenting the client certificate, if any).

    Raises:
        SettingsError: a certificate or key file cannot be read.
    """
    try:
        context = ssl.create_default_context(
            cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None
        )
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            context.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
    except (OSError, ssl.SSLError) as e:
        raise SettingsError(
            f"cannot use the TLS files (AGNEXT_TLS_CA_FILE, AGNEXT_TLS_CERT_FILE, "
            f"AGNEXT_TLS_KEY_FILE): {e}"
        ) from e
    return context


def amqp_tls(settings: BrokerSettings) -> dict[str, Any]:
    """The keyword arguments that make an ``amqps://`` connection use the settings' TLS files."""
    if not settings.amqp.startswith("amqps://"):
        return {}
    return {"ssl_context": tls_context(settings)}


def redis_tls(settings: BrokerSettings) -> dict[str, Any]:
    """The keyword arguments of a ``rediss://`` client for the settings' TLS files."""
    if not settings.redis.startswith("rediss://"):
        return {}
    options: dict[str, Any] = {"ssl_cert_reqs": "required"}
    if settings.tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.tls_ca_file)
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        options["ssl_certfile"] = str(settings.tls_cert_file)
        options["ssl_keyfile"] = str(settings.tls_key_file)
    return options
