"""BrokerSettings from the environment: types, secrets from files, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agnext_broker.application.broker import BrokerSettings


def test_values_from_the_environment_take_their_field_types(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "amqp-url"
    secret.write_text("amqp://agents:s3cret@rabbit:5672/apps\n")
    monkeypatch.setenv("AGNEXT_AMQP_URL_FILE", str(secret))
    monkeypatch.setenv("AGNEXT_PARTITIONS", "4")
    monkeypatch.setenv("AGNEXT_RPC_TIMEOUT", "2.5")
    monkeypatch.setenv("AGNEXT_DEAD_LETTER_BY_POLICY", "true")
    settings = BrokerSettings.from_env(namespace="apps")
    assert settings.amqp_url == "amqp://agents:s3cret@rabbit:5672/apps"
    assert (settings.partitions, settings.rpc_timeout) == (4, 2.5)
    assert settings.dead_letter_by_policy is True
    assert settings.namespace == "apps"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("raw", ["false", "0", "no", "FALSE"])
def test_false_reads_as_false(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("AGNEXT_DEAD_LETTER_BY_POLICY", raw)
    assert BrokerSettings.from_env().dead_letter_by_policy is False


def test_a_bad_boolean_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNEXT_DEAD_LETTER_BY_POLICY", "maybe")
    with pytest.raises(ValueError, match="AGNEXT_DEAD_LETTER_BY_POLICY='maybe': use true or false"):
        BrokerSettings.from_env()


def test_the_worker_id_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNEXT_WORKER_ID", "tally-0")
    assert BrokerSettings.from_env().worker_id == "tally-0"
    monkeypatch.delenv("AGNEXT_WORKER_ID")
    generated = BrokerSettings.from_env().worker_id
    assert generated
    assert generated != BrokerSettings.from_env().worker_id  # random each time


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("AGNEXT_PARTITIONS", "abc", "AGNEXT_PARTITIONS='abc': use a whole number"),
        ("AGNEXT_RPC_TIMEOUT", "soon", "AGNEXT_RPC_TIMEOUT='soon': use a number"),
        ("AGNEXT_PREFETCH", "0", r"prefetch must be at least 1 \(AGNEXT_PREFETCH\)"),
        ("AGNEXT_CONNECT_TIMEOUT", "-1", r"connect_timeout must be more than 0"),
        ("AGNEXT_WORKER_ID", "a b", r"Invalid worker id 'a b' \(AGNEXT_WORKER_ID\)"),
    ],
)
def test_an_invalid_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, expected: str
) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ValueError, match=expected):
        BrokerSettings.from_env()
