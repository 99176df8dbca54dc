"""App functions for the integration tests of deduplication, rejections and live subscriptions
(test_broker_dedup.py, test_broker_rejections.py, test_broker_subscriptions_live.py).

Module-level, like tests/integration/apps.py, so that a worker subprocess could run them with
``agnext-broker worker --app tests.integration.apps_messages:<function>``. The agents are the
``Counter`` of apps.py.

Message types that a worker must NOT know (test_broker_rejections.py's ``Mystery``) are defined
in the test module instead: a worker process that imported a module defining a dataclass would
find it in the process-wide serialization catalog and decode it after all.
"""

from __future__ import annotations

from agnext_broker import AgentRuntime, TypeSubscription
from tests.integration.apps import COUNTER_TYPE, Counter

INCR_TOPIC = "incr"  # events to counter/<topic source>, in test_broker_subscriptions_live.py


async def register_counter_on_incr(runtime: AgentRuntime) -> None:
    """``counter`` agents, subscribed to topic type ``incr`` (source = agent key)."""
    await Counter.register(runtime, COUNTER_TYPE, Counter)
    await runtime.add_subscription(TypeSubscription(INCR_TOPIC, COUNTER_TYPE))
