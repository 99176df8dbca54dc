import pytest

from agnext_broker import AgentId, AgentType, DefaultTopicId, TopicId


def test_agent_id_round_trips_through_str() -> None:
    agent_id = AgentId("tallier", "alpha/with/slashes")
    assert str(agent_id) == "tallier/alpha/with/slashes"
    assert AgentId.from_str(str(agent_id)) == agent_id
    assert hash(AgentId.from_str(str(agent_id))) == hash(agent_id)


def test_agent_id_accepts_agent_type() -> None:
    assert AgentId(AgentType("a.b-c_d"), "k") == AgentId("a.b-c_d", "k")


@pytest.mark.parametrize("bad", ["", "has space", "slash/type", "colon:type"])
def test_agent_id_rejects_bad_type_with_a_clear_message(bad: str) -> None:
    with pytest.raises(ValueError, match="Invalid agent type"):
        AgentId(bad, "key")


def test_agent_id_from_str_needs_a_slash() -> None:
    with pytest.raises(ValueError, match="type/key"):
        AgentId.from_str("no-slash")


def test_agent_id_is_not_equal_to_other_types() -> None:
    assert AgentId("a", "b") != "a/b"
    assert repr(AgentId("a", "b")) == 'AgentId(type="a", key="b")'


def test_topic_id_round_trips_and_validates() -> None:
    topic = TopicId("work.items:v1=x", "src/with/slash")
    assert TopicId.from_str(str(topic)) == topic
    with pytest.raises(ValueError, match="Invalid topic type"):
        TopicId("bad type", "s")


def test_default_topic_id_outside_a_handler() -> None:
    assert DefaultTopicId() == TopicId("default", "default")
    assert DefaultTopicId("t", "s") == TopicId("t", "s")
