"""TLS to RabbitMQ (``amqps://``) and Redis (``rediss://``), on private servers that speak it.

A test CA (``tests/certificates.py``) signs a server certificate for ``localhost`` /
``127.0.0.1`` and a client certificate. Two pairs of servers: one verifies client certificates
when given but does not ask for one (``fail_if_no_peer_cert = false``, ``--tls-auth-clients
no``), the other requires one (mutual TLS). A worker and a client runtime given
``tls_ca_file`` (and, for mutual TLS, ``tls_cert_file`` / ``tls_key_file``) exchange an RPC and
an event; without the CA (the system's CAs do not know the test CA), with another CA, or without
a client certificate where one is required, ``start()`` fails within ``connect_timeout`` with a
``ServiceUnavailableError`` naming the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from agnext_broker import AccessRefusedError, AgentId, ServiceUnavailableError, TopicId
from agnext_broker.application.broker import BrokerAgentRuntime, BrokerSettings
from tests.certificates import Certificates, make_certificates
from tests.integration.apps import (
    COUNTER_TYPE,
    INCREMENTS_TOPIC,
    Increment,
    ReadCount,
    register_counter,
)
from tests.integration.workers import (
    RuntimePool,
    bounded,
    broker_settings,
    state_document,
    wait_until,
)
from tests.servers import AnyRedis, RabbitMQServer, RedisServer, ServerTls

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT = 3.0
# start() gives up after connect_timeout; what it may take beyond (the last attempt's own
# handshake, closing what was opened).
START_SLACK = 2.0


@dataclass
class TlsServers:
    """A RabbitMQ node with a TLS listener (and its plain one) and a TLS-only Redis."""

    rabbitmq: RabbitMQServer
    redis: RedisServer
    mutual: bool

    @property
    def amqps_url(self) -> str:
        return self.rabbitmq.amqps_url

    @property
    def rediss_url(self) -> str:
        return self.redis.url


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _start_servers(certificates: Certificates, *, mutual: bool) -> TlsServers:
    tls = ServerTls(
        ca_file=certificates.ca_file,
        cert_file=certificates.server_cert_file,
        key_file=certificates.server_key_file,
        require_client_cert=mutual,
        client_cert_file=certificates.client_cert_file,
        client_key_file=certificates.client_key_file,
    )
    rabbitmq = RabbitMQServer(tls=tls)
    redis_server = RedisServer(tls=tls, appendonly=False)
    try:
        rabbitmq.start()
        redis_server.start()
    except BaseException:
        rabbitmq.close()
        redis_server.close()
        raise
    return TlsServers(rabbitmq, redis_server, mutual)


@pytest.fixture(scope="module")
def tls_servers(certificates: Certificates) -> Iterator[TlsServers]:
    """Servers that verify a client certificate if one is presented, and ask for none."""
    servers = _start_servers(certificates, mutual=False)
    try:
        yield servers
    finally:
        servers.rabbitmq.close()
        servers.redis.close()


@pytest.fixture(scope="module")
def mutual_tls_servers(certificates: Certificates) -> Iterator[TlsServers]:
    """Servers that refuse clients without a certificate signed by the test CA."""
    servers = _start_servers(certificates, mutual=True)
    try:
        yield servers
    finally:
        servers.rabbitmq.close()
        servers.redis.close()


def client_files(certificates: Certificates, *, with_cert: bool) -> dict[str, Any]:
    files: dict[str, Any] = {"tls_ca_file": certificates.ca_file}
    if with_cert:
        files["tls_cert_file"] = certificates.client_cert_file
        files["tls_key_file"] = certificates.client_key_file
    return files


async def harness_redis(servers: TlsServers, certificates: Certificates) -> redis.asyncio.Redis:
    """The test's own client of the TLS Redis (for reading what the runtime stored)."""
    return redis.asyncio.Redis.from_url(
        servers.rediss_url,
        ssl_cert_reqs="required",
        ssl_ca_certs=str(certificates.ca_file),
        ssl_certfile=str(certificates.client_cert_file),
        ssl_keyfile=str(certificates.client_key_file),
    )


def tls_connections(rabbitmq: RabbitMQServer, namespace: str) -> list[tuple[str, str]]:
    """(ssl, peer_cert_subject) of the namespace's AMQP connections (those whose client
    properties name them ``agnext-<ns>-<worker id>-publish|consume``), from ``rabbitmqctl
    list_connections``."""
    result = rabbitmq.ctl(
        "list_connections", "-q", "--no-table-headers", "ssl", "peer_cert_subject",
        "client_properties",
    )  # fmt: skip
    rows = [line.split("\t", 2) for line in result.stdout.splitlines() if line.strip()]
    return [(row[0], row[1]) for row in rows if f"agnext-{namespace}-" in row[2]]


# -- a worker and a client over TLS ---------------------------------------------------------------


@pytest.mark.parametrize("mutual", [False, True], ids=["server-tls", "mutual-tls"])
async def test_rpc_and_event_over_tls(
    request: pytest.FixtureRequest,
    certificates: Certificates,
    namespace: str,
    mutual: bool,
) -> None:
    servers: TlsServers = request.getfixturevalue("mutual_tls_servers" if mutual else "tls_servers")
    # One-way TLS: the runtimes present no certificate (the servers do not ask for one).
    files = client_files(certificates, with_cert=mutual)
    pool = RuntimePool(servers.amqps_url, servers.rediss_url, namespace)
    inspector = await harness_redis(servers, certificates)
    try:
        await pool.start(register_counter, **files)
        client = await pool.start(**files)
        agent = AgentId(COUNTER_TYPE, "alice")

        assert await client.send_message(Increment(2), agent) == 2
        await client.publish_message(Increment(3), TopicId(INCREMENTS_TOPIC, "alice"))

        async def counted() -> bool:
            return await client.send_message(ReadCount(), agent) == 5

        await wait_until(counted, timeout=20, what="the event over TLS is counted")
        document = await state_document(inspector, namespace, COUNTER_TYPE, "alice")
        assert document is not None
        assert document["state"]["count"] == 5

        # Every AMQP connection of the namespace is a TLS one; with mutual TLS the broker saw
        # the client certificate.
        connections = tls_connections(servers.rabbitmq, namespace)
        assert len(connections) == 4, connections  # publish + consume, for each runtime
        for ssl_on, subject in connections:
            assert ssl_on == "true", connections
            if mutual:
                assert "agnext-broker test client" in subject, connections
    finally:
        await pool.close()
        await inspector.aclose()


# -- start() refuses servers it cannot verify -------------------------------------------------


async def start_failure(settings: BrokerSettings) -> tuple[BaseException, float]:
    """What ``await runtime.start()`` raised, and after how many seconds."""
    runtime = BrokerAgentRuntime(settings)
    started = time.monotonic()
    try:
        try:
            await bounded(runtime.start(), "runtime.start()", 60)
        except Exception as e:
            elapsed = time.monotonic() - started
            print(f"start() failed after {elapsed:.2f} s: {type(e).__name__}: {e}")
            return e, elapsed
        raise AssertionError("the runtime started")
    finally:
        await bounded(runtime.close(), "runtime.close()")


def assert_clear_failure(error: BaseException, elapsed: float, server: str, url: str) -> None:
    assert isinstance(error, ServiceUnavailableError), repr(error)
    assert not isinstance(error, AccessRefusedError), repr(error)
    assert elapsed < CONNECT_TIMEOUT + START_SLACK, f"start() failed after {elapsed:.2f} s"
    message = str(error)
    assert f"{server} at {url}" in message, message
    assert "\n" not in message, message
    assert "guest:guest" not in message, message


@pytest.fixture(params=["no-ca", "other-ca"])
def untrusting(request: pytest.FixtureRequest, certificates: Certificates) -> dict[str, Any]:
    """TLS settings that cannot verify the servers: the system's CAs, or an unrelated CA."""
    if request.param == "no-ca":
        return {}
    return {"tls_ca_file": certificates.other_ca_file}


async def test_rabbitmq_not_verified_fails_start(
    tls_servers: TlsServers,
    redis_server: AnyRedis,
    namespace: str,
    untrusting: dict[str, Any],
) -> None:
    # Redis without TLS (the session's): the failure can only be RabbitMQ's.
    settings = broker_settings(
        tls_servers.amqps_url,
        redis_server.redis_url,
        namespace,
        connect_timeout=CONNECT_TIMEOUT,
        **untrusting,
    )
    error, elapsed = await start_failure(settings)
    port = tls_servers.rabbitmq.tls_port
    assert_clear_failure(error, elapsed, "RabbitMQ", f"amqps://guest:***@127.0.0.1:{port}/")
    assert "CERTIFICATE_VERIFY_FAILED" in str(error), str(error)


async def test_redis_not_verified_fails_start(
    tls_servers: TlsServers, namespace: str, untrusting: dict[str, Any]
) -> None:
    # RabbitMQ over its plain listener: the failure can only be Redis'.
    settings = broker_settings(
        tls_servers.rabbitmq.amqp_url,
        tls_servers.rediss_url,
        namespace,
        connect_timeout=CONNECT_TIMEOUT,
        **untrusting,
    )
    error, elapsed = await start_failure(settings)
    assert_clear_failure(error, elapsed, "Redis", tls_servers.rediss_url)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error), str(error)


async def test_mutual_tls_rabbitmq_refuses_a_client_without_certificate(
    mutual_tls_servers: TlsServers,
    redis_server: AnyRedis,
    certificates: Certificates,
    namespace: str,
) -> None:
    settings = broker_settings(
        mutual_tls_servers.amqps_url,
        redis_server.redis_url,
        namespace,
        connect_timeout=CONNECT_TIMEOUT,
        **client_files(certificates, with_cert=False),
    )
    error, elapsed = await start_failure(settings)
    port = mutual_tls_servers.rabbitmq.tls_port
    assert_clear_failure(error, elapsed, "RabbitMQ", f"amqps://guest:***@127.0.0.1:{port}/")


async def test_mutual_tls_redis_refuses_a_client_without_certificate(
    mutual_tls_servers: TlsServers, certificates: Certificates, namespace: str
) -> None:
    settings = broker_settings(
        mutual_tls_servers.rabbitmq.amqp_url,
        mutual_tls_servers.rediss_url,
        namespace,
        connect_timeout=CONNECT_TIMEOUT,
        **client_files(certificates, with_cert=False),
    )
    error, elapsed = await start_failure(settings)
    assert_clear_failure(error, elapsed, "Redis", mutual_tls_servers.rediss_url)


def test_certificates_name_the_loopback_server(certificates: Certificates) -> None:
    """The server certificate carries 127.0.0.1 and localhost as subject alternative names
    (what the runtimes verify the hostname against)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(certificates.server_cert_file).read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
