"""Every row of the fault matrix (``tests/chaos/scenarios.py``), with short loads: nothing sent
is lost, nothing is applied twice, every call retried with the same message id gets through,
and what each fault must do on top of that. ``scripts/chaos.py`` runs the same rows with full
loads and prints their figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import PARTITIONS
from tests.chaos.scenarios import SCENARIOS, Env
from tests.servers import RabbitMQServer, RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.mark.parametrize("row", list(SCENARIOS))
async def test_fault_matrix_row(
    row: str, private_rabbitmq: RabbitMQServer, private_redis_server: RedisServer, tmp_path: Path
) -> None:
    name, scenario = SCENARIOS[row]
    outcome = await scenario(Env(private_rabbitmq, private_redis_server, tmp_path, quick=True))
    print(f"row {row} ({name}): {outcome}")
    assert outcome.sent > 0
    assert outcome.lost == 0, outcome
    assert outcome.duplicates == 0, outcome
    assert outcome.unexpected == 0, outcome
    assert outcome.failed_calls == 0, outcome
    assert outcome.effects >= outcome.sent
    assert outcome.handled >= outcome.effects  # re-runs after crashes count as handled
    notes = outcome.notes
    if row == "3":
        assert notes["exit code"] == 0
    if row == "13":
        assert notes["dead letters"] == {"handler_error": notes["poisoned"]}
    elif row == "14":
        assert outcome.dead_lettered == notes["injected"]
        assert set(notes["dead letters"]) <= {
            "invalid_cloudevent",
            "undecodable",
            "unknown_type",
            "too_large",
        }
        assert notes["worker restarts"] == 0
    else:
        assert outcome.dead_lettered == 0, outcome
    if row == "15":
        assert "undeliverable after ms" in notes
    if row == "18":
        assert notes["overlapping activations"] == 0
        assert notes["final count"] == outcome.sent
    if row == "19":
        # at most prefetch deliveries per partition queue a worker consumes
        assert notes["unacked per channel peak"] <= notes["prefetch"] * PARTITIONS
    if row in ("5", "6", "7", "10", "11"):
        assert outcome.recovery_s is not None
