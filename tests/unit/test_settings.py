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
    assert settings.amqp == "amqp://agents:s3cret@rabbit:5672/apps"
    assert settings.amqp_url.get_secret_value() == settings.amqp  # a SecretStr
    assert (settings.partitions, settings.rpc_timeout) == (4, 2.5)
    assert settings.dead_letter_by_policy is True
    assert settings.namespace == "apps"
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings)


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
        ("AGNEXT_PREFETCH", "0", r"AGNEXT_PREFETCH='0': Input should be greater than or equal"),
        ("AGNEXT_CONNECT_TIMEOUT", "-1", r"AGNEXT_CONNECT_TIMEOUT='-1': Input should be greater"),
        ("AGNEXT_WORKER_ID", "a b", r"AGNEXT_WORKER_ID='a b': invalid worker id 'a b'"),
        ("AGNEXT_QUEUE_TYPE", "lazy", r"AGNEXT_QUEUE_TYPE='lazy': Input should be 'quorum' or"),
        ("AGNEXT_PARTITIONS", "12", r"AGNEXT_PARTITIONS='12': Invalid partition count 12"),
    ],
)
def test_an_invalid_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, expected: str
) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ValueError, match=expected):
        BrokerSettings.from_env()


def test_a_secret_file_that_cannot_be_read_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNEXT_REDIS_URL_FILE", "/nonexistent/redis-url")
    with pytest.raises(ValueError, match="AGNEXT_REDIS_URL_FILE='/nonexistent/redis-url': cannot"):
        BrokerSettings.from_env()


def test_arguments_win_over_variables_and_changes_are_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGNEXT_PARTITIONS", "8")
    assert BrokerSettings.from_env(partitions=2).partitions == 2
    settings = BrokerSettings.from_env()
    assert settings.partitions == 8
    assert settings.with_changes(prefetch=10).prefetch == 10
    with pytest.raises(ValueError, match="prefetch=0: Input should be greater than or equal"):
        settings.with_changes(prefetch=0)
