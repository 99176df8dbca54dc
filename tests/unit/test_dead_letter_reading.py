"""Reading a dead letter (agnext_broker/application/broker/_operator/_letters.py): its reason and
origin from a worker's headers or the broker's ``x-death``, the routing key that takes it back to
its agent's partition, and the message sent back without what dead-lettering added."""

from __future__ import annotations

import datetime
import json
from types import SimpleNamespace
from typing import Any

import pytest

from agnext_broker.application.broker._names import Names
from agnext_broker.application.broker._operator._letters import (
    CannotReplay,
    describe,
    reason_of,
    replay_routing_key,
    replayed,
    source_queue,
)
from agnext_broker.application.broker._routing import direct_binding, routing_key

NAMES = Names("ns")
PARTITIONS = 4


def letter(headers: dict[str, Any], body: bytes = b'{"n": 1}', **properties: Any) -> Any:
    values: dict[str, Any] = {
        "headers": headers,
        "body": body,
        "content_type": "application/json",
        "content_encoding": None,
        "priority": None,
        "correlation_id": None,
        "reply_to": None,
        "message_id": None,
        "timestamp": None,
        "type": None,
        "app_id": None,
    }
    values.update(properties)
    return SimpleNamespace(**values)


def event_headers(source: str = "k1", queue: str = "ns.agent.picky.2") -> dict[str, Any]:
    return {
        "ce-id": "m-1",
        "ce-source": "agnext/w1",
        "ce-type": "Job",
        "ce-specversion": "1.0",
        "ce-agkind": "publish",
        "ce-agtopictype": "jobs",
        "ce-agtopicsource": source,
        "x-agnext-reason": "handler_error",
        "x-agnext-detail": "boom",
        "x-agnext-queue": queue,
    }


def registered(agent_type: str) -> int | None:
    return PARTITIONS if agent_type in ("picky", "a.dotted.type") else None


def test_a_workers_dead_letter_is_described_from_its_headers() -> None:
    view = describe(letter(event_headers()))
    assert view.message_id == "m-1"
    assert view.target == "jobs/k1"
    assert (view.reason, view.detail, view.queue) == ("handler_error", "boom", "ns.agent.picky.2")
    assert view.deaths == 0
    assert view.age_s is None  # a worker's copy carries no time
    assert view.size == len(b'{"n": 1}')


def test_a_brokers_dead_letter_is_described_from_x_death() -> None:
    died = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=30)
    headers = {
        key: value for key, value in event_headers().items() if not key.startswith("x-agnext")
    }
    headers["x-death"] = [
        {"queue": "ns.agent.picky.1", "reason": "delivery_limit", "count": 2, "time": died},
        {"queue": "ns.agent.picky.3", "reason": "rejected", "count": 1, "time": died},
    ]
    message = letter(headers)
    assert reason_of(message) == "delivery_limit"
    assert source_queue(message) == "ns.agent.picky.1"
    view = describe(message)
    assert view.deaths == 3
    assert view.age_s is not None
    assert 29 < view.age_s < 60


def test_structured_mode_attributes_come_from_the_body() -> None:
    body = json.dumps(
        {"specversion": "1.0", "id": "s-1", "source": "svc", "type": "Job", "agkind": "send",
         "agrecipient": "picky/k9", "data": {"n": 1}}
    ).encode()  # fmt: skip
    headers = {"x-agnext-reason": "unknown_type", "x-agnext-queue": "ns.agent.picky.0"}
    message = letter(headers, body, content_type="application/cloudevents+json")
    view = describe(message)
    assert (view.message_id, view.kind, view.target) == ("s-1", "send", "picky/k9")
    assert replay_routing_key(NAMES, message, registered) == routing_key("k9", "picky")


def test_an_event_goes_back_by_its_topic_source_to_its_agent_type() -> None:
    message = letter(event_headers(source="k1", queue="ns.agent.picky.3"))
    # k1's partition, whichever partition it sat in (a misrouted one goes where it belongs)
    assert replay_routing_key(NAMES, message, registered) == routing_key("k1", "picky")


def test_a_direct_message_goes_back_by_its_recipient() -> None:
    headers = {
        "ce-id": "m-2",
        "ce-agkind": "send",
        "ce-agrecipient": "a.dotted.type/key 1",
        "x-agnext-queue": "ns.agent.a.dotted.type.1",
    }
    message = letter(headers)
    assert replay_routing_key(NAMES, message, registered) == routing_key("key 1", "a.dotted.type")


def test_a_message_without_an_agent_key_goes_back_to_its_partition() -> None:
    message = letter(
        {"x-agnext-reason": "invalid_cloudevent", "x-agnext-queue": "ns.agent.picky.2"}
    )
    key = replay_routing_key(NAMES, message, registered)
    words = key.split(".")
    binding = direct_binding("picky", 2, PARTITIONS).split(".")
    assert len(words) == len(binding)
    assert all(b in ("*", w) for w, b in zip(words, binding, strict=True))
    for other in (0, 1, 3):  # and no other partition's binding takes it
        pattern = direct_binding("picky", other, PARTITIONS).split(".")
        assert not all(b in ("*", w) for w, b in zip(words, pattern, strict=True))


@pytest.mark.parametrize(
    ("queue", "why"),
    [
        ("other.agent.picky.1", "not a partition queue"),
        ("ns.reply.w1", "not a partition queue"),
        ("ns.agent.gone.1", "not registered"),
    ],
)
def test_what_cannot_go_back_says_why(queue: str, why: str) -> None:
    with pytest.raises(CannotReplay, match=why):
        replay_routing_key(NAMES, letter(event_headers(queue=queue)), registered)


def test_the_message_sent_back_keeps_its_id_and_cloudevent_headers_only() -> None:
    headers = event_headers()
    headers.update(
        {"x-death": [{"count": 1}], "x-first-death-queue": "q", "x-delivery-count": 3,
         "traceparent": "00-abc-def-01"}
    )  # fmt: skip
    sent = replayed(letter(headers, user_id="guest", expiration="1000"))
    assert sent.message_id == "m-1"
    assert sent.delivery_mode == 2
    assert sent.user_id is None
    assert sent.expiration is None
    assert sent.headers == {
        key: value
        for key, value in {**event_headers(), "traceparent": "00-abc-def-01"}.items()
        if not key.startswith("x-")
    }
