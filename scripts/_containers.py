"""Helpers of scripts/test-containers.sh, run on the host with the project's .venv
(``PYTHONPATH`` = the repository, for ``tests.servers``).

    servers ENV_FILE        start a private RabbitMQ and Redis on free loopback ports, write
                            AMQP_URL, REDIS_URL and HEALTH_PORTS (three free ports) to ENV_FILE,
                            then serve until SIGTERM or SIGINT, and stop them
    owner NS TYPE KEY       the worker id holding agent TYPE/KEY's partition
    reported NS             the items the tally example's reporter has counted so far
    wait-reported NS N S    until the reporter has counted N items (at most S seconds)
    readyz PORT             GET /readyz on 127.0.0.1:PORT: print it, exit 0 if it says 200

The reading commands take the Redis URL from AGNEXT_REDIS_URL.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import redis

from agnext_broker import AgentId
from agnext_broker.application.broker._names import Names
from agnext_broker.application.broker._routing import partition_of


def _serve(env_file: Path) -> int:
    from tests.servers import RabbitMQServer, RedisServer, free_port

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with RabbitMQServer() as rabbitmq, RedisServer() as redis_server:
        ports = " ".join(str(free_port()) for _ in range(3))
        partial = env_file.with_name(env_file.name + ".partial")
        partial.write_text(
            f"AMQP_URL={rabbitmq.amqp_url}\nREDIS_URL={redis_server.redis_url}\n"
            f"HEALTH_PORTS='{ports}'\n"
        )
        partial.rename(env_file)  # whole or not at all, for the script polling for it
        print(f"rabbitmq {rabbitmq.amqp_url}, redis {redis_server.redis_url}", flush=True)
        while not stop.wait(1.0):
            if not (rabbitmq.is_running and redis_server.is_running):
                print("a private server stopped by itself", file=sys.stderr, flush=True)
                return 1
    return 0


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["AGNEXT_REDIS_URL"], decode_responses=True)


def _state(client: redis.Redis, namespace: str, agent: AgentId) -> dict[str, Any]:
    document = client.get(Names(namespace).state_key(agent))
    if not document:
        return {}
    return dict(json.loads(str(document)).get("state") or {})


def _reported(client: redis.Redis, namespace: str) -> int:
    return int(_state(client, namespace, AgentId("reporter", "default")).get("items", 0))


def _owner(namespace: str, agent_type: str, key: str) -> int:
    names = Names(namespace)
    client = _client()
    info = client.hget(names.types_key, agent_type)
    if info is None:
        print(
            f"no agent type {agent_type!r} registered in namespace {namespace!r}", file=sys.stderr
        )
        return 1
    partitions = int(json.loads(str(info))["partitions"])
    owner = client.get(names.owner_key(agent_type, partition_of(key, partitions)))
    if owner is None:
        print(f"nobody holds {agent_type}/{key}", file=sys.stderr)
        return 1
    print(owner)
    return 0


def _wait_reported(namespace: str, items: int, seconds: float) -> int:
    client = _client()
    deadline = time.monotonic() + seconds
    while (reported := _reported(client, namespace)) < items:
        if time.monotonic() > deadline:
            print(f"the reporter counted {reported} of {items} items", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(reported)
    return 0


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as answer:
            print(answer.read().decode().strip())
            return 0
    except urllib.error.HTTPError as e:
        print(f"{e.code}: {e.read().decode().strip()}")
    except OSError as e:
        print(f"no answer: {e}")
    return 1


def main(argv: list[str]) -> int:
    match argv:
        case ["servers", env_file]:
            return _serve(Path(env_file))
        case ["owner", namespace, agent_type, key]:
            return _owner(namespace, agent_type, key)
        case ["reported", namespace]:
            print(_reported(_client(), namespace))
            return 0
        case ["wait-reported", namespace, items, seconds]:
            return _wait_reported(namespace, int(items), float(seconds))
        case ["readyz", port]:
            return _readyz(int(port))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
