"""``redact``: what the runtime shows of a server's URL (in logs, errors, ``repr``) never holds
its password, wherever the URL carries it."""

from __future__ import annotations

import pytest

from agnext_broker.application.broker import BrokerSettings
from agnext_broker.application.broker._settings import redact

CASES = {
    "amqp://agents:hunter2@rabbit:5672/apps": "amqp://agents:***@rabbit:5672/apps",
    "amqps://agents:hunter2@rabbit/apps?heartbeat=10": "amqps://agents:***@rabbit/apps?heartbeat=10",
    "redis://:hunter2@redis:6379/0": "redis://:***@redis:6379/0",
    "rediss://agents:hunter2@redis/0": "rediss://agents:***@redis/0",
    # percent-encoded, and with the characters that need it left as they are
    "redis://agents:hun%40ter%2F2@redis/0": "redis://agents:***@redis/0",
    "amqp://agents:hun:t@er2@rabbit/apps": "amqp://agents:***@rabbit/apps",
    # redis-py also takes the password from the query string
    "redis://redis/0?password=hunter2&db=1": "redis://redis/0?password=***&db=1",
    "rediss://redis/0?ssl_password=hunter2": "rediss://redis/0?ssl_password=***",
    # not a URL with a host (the scheme left out): everything before the "@" goes
    "agents:hunter2@rabbit:5672": "***@rabbit:5672",
    # nothing secret: unchanged
    "redis://localhost:6379/0": "redis://localhost:6379/0",
    "amqp://agents@rabbit/apps": "amqp://agents@rabbit/apps",
    "rediss://redis/0?ssl_cert_reqs=required": "rediss://redis/0?ssl_cert_reqs=required",
}


@pytest.mark.parametrize("url", list(CASES))
def test_redact_hides_the_password(url: str) -> None:
    assert redact(url) == CASES[url]
    assert "hunter2" not in redact(url)
    assert "hun%40ter" not in redact(url)


def test_settings_never_show_the_passwords() -> None:
    settings = BrokerSettings(
        amqp_url="amqp://agents:hunter2@rabbit/apps",
        redis_url="redis://redis/0?password=hunter2",
    )
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2" not in shown, shown
