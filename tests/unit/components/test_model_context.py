"""Model contexts: what each one shows the model, and that their state survives JSON."""

from __future__ import annotations

import json

import pytest

from agnext_broker import FunctionCall, Image
from agnext_broker.model_context import (
    BufferedChatCompletionContext,
    ChatCompletionContext,
    HeadAndTailChatCompletionContext,
    TokenLimitedChatCompletionContext,
    UnboundedChatCompletionContext,
)
from agnext_broker.models import (
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    SystemMessage,
    UserMessage,
)

from .counting_client import WordCountingClient


def user(text: str) -> UserMessage:
    return UserMessage(content=text, source="user")


def calls(call_id: str) -> AssistantMessage:
    return AssistantMessage(
        content=[FunctionCall(id=call_id, arguments="{}", name="lookup")], source="assistant"
    )


def results(call_id: str) -> FunctionExecutionResultMessage:
    return FunctionExecutionResultMessage(
        content=[FunctionExecutionResult(content="found", name="lookup", call_id=call_id)]
    )


async def filled(context: ChatCompletionContext, messages: list[LLMMessage]) -> None:
    for message in messages:
        await context.add_message(message)


async def test_unbounded_context_shows_every_message_until_cleared() -> None:
    context = UnboundedChatCompletionContext(initial_messages=[SystemMessage(content="hi")])
    await filled(context, [user(str(n)) for n in range(50)])
    assert len(await context.get_messages()) == 51
    await context.clear()
    assert await context.get_messages() == []


async def test_buffered_context_shows_the_last_buffer_size_messages() -> None:
    context = BufferedChatCompletionContext(buffer_size=3)
    await filled(context, [user(str(n)) for n in range(5)])
    assert await context.get_messages() == [user("2"), user("3"), user("4")]


async def test_buffered_context_leaves_out_results_whose_call_is_outside_the_buffer() -> None:
    context = BufferedChatCompletionContext(buffer_size=2)
    await filled(context, [user("q"), calls("c1"), results("c1"), user("thanks")])
    assert await context.get_messages() == [user("thanks")]


@pytest.mark.parametrize("size", [0, -1])
def test_buffer_size_must_be_positive(size: int) -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        BufferedChatCompletionContext(buffer_size=size)


async def test_head_and_tail_context_shows_everything_while_it_fits() -> None:
    context = HeadAndTailChatCompletionContext(head_size=2, tail_size=2)
    await filled(context, [user(str(n)) for n in range(4)])
    assert await context.get_messages() == [user(str(n)) for n in range(4)]


async def test_head_and_tail_context_puts_a_placeholder_for_what_it_skips() -> None:
    context = HeadAndTailChatCompletionContext(head_size=2, tail_size=3)
    await filled(context, [user(str(n)) for n in range(10)])
    assert await context.get_messages() == [
        user("0"),
        user("1"),
        UserMessage(content="Skipped 5 messages.", source="System"),
        user("7"),
        user("8"),
        user("9"),
    ]


async def test_head_and_tail_context_never_splits_calls_from_their_results() -> None:
    context = HeadAndTailChatCompletionContext(head_size=2, tail_size=2)
    await filled(
        context,
        [user("q"), calls("c1"), results("c1"), user("a"), calls("c2"), results("c2"), user("z")],
    )
    assert await context.get_messages() == [
        user("q"),
        UserMessage(content="Skipped 3 messages.", source="System"),
        user("z"),
    ]


def test_head_and_tail_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="head_size"):
        HeadAndTailChatCompletionContext(head_size=0, tail_size=1)
    with pytest.raises(ValueError, match="tail_size"):
        HeadAndTailChatCompletionContext(head_size=1, tail_size=0)


async def test_token_limited_context_drops_from_the_middle_until_it_fits() -> None:
    context = TokenLimitedChatCompletionContext(WordCountingClient(), token_limit=7)
    conversation = [
        SystemMessage(content="answer in one word"),  # 4 words
        user("one two"),
        user("three four"),
        user("five six"),
        user("last words"),
    ]
    await filled(context, conversation)
    kept = await context.get_messages()
    assert kept == [conversation[0], conversation[-1]]
    assert WordCountingClient().count_tokens(kept) <= 7


async def test_token_limited_context_uses_the_models_window_without_a_limit() -> None:
    context = TokenLimitedChatCompletionContext(WordCountingClient(window=4))
    await filled(context, [user("a b"), user("c d"), user("e f")])
    assert await context.get_messages() == [user("a b"), user("e f")]


async def test_token_limited_context_leaves_out_results_whose_call_was_dropped() -> None:
    client = WordCountingClient()
    conversation = [user("a"), user("b"), calls("c1"), results("c1"), user("z")]
    # dropping the call (the middle message) is enough to fit, which leaves its result behind
    limit = client.count_tokens(conversation) - client.count_tokens([calls("c1")])
    context = TokenLimitedChatCompletionContext(client, token_limit=limit)
    await filled(context, conversation)
    assert await context.get_messages() == [user("a"), user("b"), user("z")]


def test_token_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="token_limit"):
        TokenLimitedChatCompletionContext(WordCountingClient(), token_limit=0)


def new_contexts() -> list[ChatCompletionContext]:
    return [
        UnboundedChatCompletionContext(),
        BufferedChatCompletionContext(buffer_size=4),
        HeadAndTailChatCompletionContext(head_size=1, tail_size=2),
        TokenLimitedChatCompletionContext(WordCountingClient(), token_limit=100),
    ]


@pytest.mark.parametrize("index", range(len(new_contexts())))
async def test_state_survives_json_into_a_new_context(index: int) -> None:
    conversation: list[LLMMessage] = [
        SystemMessage(content="be kind"),
        UserMessage(content=["see", Image(b"\x89PNG\r\n\x1a\n....")], source="user"),
        calls("c1"),
        results("c1"),
        AssistantMessage(content="done", thought="easy", source="assistant"),
    ]
    context = new_contexts()[index]
    await filled(context, conversation)
    saved = json.loads(json.dumps(await context.save_state()))

    resumed = new_contexts()[index]
    await resumed.load_state(saved)
    assert await resumed.get_messages() == await context.get_messages()
    assert (await resumed.save_state()) == saved
