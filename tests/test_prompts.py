from pathlib import Path

import pytest
import trl

from cipo.builtin_models import char_tokenizer
from cipo.core.prompts import (
    ATTEMPT_HEADER,
    DEFAULT_INSTRUCTION,
    TRUNCATION_MARKER,
    attempt_text,
    build_correction_prompt,
    build_correction_row,
    resolve_layout,
    template_keeps_reasoning,
    truncate_attempt,
    validate_text_template,
)


def test_conversational_prompt_continues_the_conversation() -> None:
    prompt = [{"role": "system", "content": "be careful"}, {"role": "user", "content": "2+2?"}]
    built = build_correction_prompt(prompt, "It is 5.")
    assert built[:2] == prompt
    assert built[2] == {"role": "assistant", "content": "It is 5."}
    assert built[3] == {"role": "user", "content": DEFAULT_INSTRUCTION}
    assert len(prompt) == 2  # the source prompt is not modified


def test_text_prompt_uses_the_template() -> None:
    built = build_correction_prompt("Q: 2+2?\nA:", " 5", template="{prompt}{attempt}\nFix: {instruction}")
    assert built == f"Q: 2+2?\nA: 5\nFix: {DEFAULT_INSTRUCTION}"


def test_default_instruction_does_not_reveal_correctness() -> None:
    lowered = DEFAULT_INSTRUCTION.lower()
    for word in ("wrong", "incorrect", "is correct", "error in your"):
        assert word not in lowered


def test_template_validation() -> None:
    validate_text_template("{prompt} {attempt}")
    with pytest.raises(ValueError, match=r"\{attempt\}"):
        validate_text_template("{prompt} only")
    with pytest.raises(ValueError, match="does not format"):
        validate_text_template("{prompt} {attempt} {unknown}")


def test_truncation_keeps_the_end() -> None:
    tokenizer = char_tokenizer()
    attempt = "step one. step two. answer 42"
    kept = truncate_attempt(attempt, tokenizer, 9)
    assert kept == TRUNCATION_MARKER + "answer 42"
    assert truncate_attempt(attempt, tokenizer, 1000) == attempt
    assert truncate_attempt(attempt, None, 3) == attempt


def test_correction_row_carries_the_source_columns() -> None:
    source = {"prompt": [{"role": "user", "content": "2+2?"}], "answer": "4", "tests": ["assert f()"], "id": 7}
    completion = [{"role": "assistant", "content": "5"}]
    row = build_correction_row(source, completion)
    assert row["answer"] == "4" and row["tests"] == ["assert f()"] and row["id"] == 7
    assert row["prompt"][-2]["content"] == "5"
    assert attempt_text(completion) == "5"


# ---------------------------------------------------------------------------------- thinking models, tool calls
QWEN3_TEMPLATE = Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja"
THINKING_ATTEMPT = "<think>7 plus 8 is 16, carry the one</think>The answer is \\boxed{16}."


def qwen3_tokenizer():  # noqa: ANN201
    tokenizer = char_tokenizer()
    tokenizer.chat_template = QWEN3_TEMPLATE.read_text()
    return tokenizer


def render(tokenizer, prompt) -> str:  # noqa: ANN001
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def test_qwen3_template_is_detected_as_dropping_reasoning() -> None:
    tokenizer = qwen3_tokenizer()
    assert not template_keeps_reasoning(tokenizer)
    assert resolve_layout("auto", tokenizer) == "user_turn"
    assert resolve_layout("auto", char_tokenizer()) == "conversation"  # a template that shows every turn
    assert resolve_layout("conversation", tokenizer) == "conversation"
    with pytest.raises(ValueError, match="correction_layout"):
        resolve_layout("sideways", tokenizer)


def test_the_reviewed_attempt_keeps_its_reasoning_through_the_qwen3_template() -> None:
    tokenizer = qwen3_tokenizer()
    source = {"prompt": [{"role": "user", "content": "Compute 7+8."}], "answer": "15"}
    completion = [{"role": "assistant", "content": THINKING_ATTEMPT}]
    layout = resolve_layout("auto", tokenizer)
    shown = render(tokenizer, build_correction_row(source, completion, layout=layout)["prompt"])
    assert "carry the one" in shown and "\\boxed{16}" in shown and DEFAULT_INSTRUCTION in shown
    # The continued conversation, rendered by the same template, loses the reasoning under review.
    hidden = render(tokenizer, build_correction_row(source, completion, layout="conversation")["prompt"])
    assert "carry the one" not in hidden


def test_user_turn_layout_quotes_the_attempt_after_the_problem() -> None:
    prompt = [{"role": "system", "content": "be careful"}, {"role": "user", "content": "2+2?"}]
    built = build_correction_prompt(prompt, "It is 5.", layout="user_turn")
    assert built[0] == prompt[0] and len(built) == 2
    assert built[1] == {"role": "user", "content": f"2+2?\n\n{ATTEMPT_HEADER}\nIt is 5.\n\n{DEFAULT_INSTRUCTION}"}


TOOL_ROLLOUT = [
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 7, "b": 8}}}]},
    {"role": "tool", "name": "add", "content": "15"},
    {"role": "assistant", "content": "So the answer is \\boxed{15}."},
]


def test_tool_calling_attempt_keeps_its_turns() -> None:
    source = {"prompt": [{"role": "user", "content": "Compute 7+8."}], "answer": "15"}
    row = build_correction_row(source, TOOL_ROLLOUT, layout="conversation")
    assert row["prompt"][1:4] == TOOL_ROLLOUT  # assistant call, tool result, final answer: unchanged
    assert row["prompt"][-1] == {"role": "user", "content": DEFAULT_INSTRUCTION}
    with pytest.raises(ValueError, match="tool-calling attempt"):
        attempt_text(TOOL_ROLLOUT)
    with pytest.raises(ValueError, match="conversational prompt"):
        build_correction_row({"prompt": "Compute 7+8."}, TOOL_ROLLOUT)


def test_correction_uses_the_prompt_the_model_was_sent() -> None:
    # environment_factory datasets may have no prompt column: reset() supplied what the model saw.
    sent = [{"role": "user", "content": "Board: 3 4. Compute the sum."}]
    row = build_correction_row({"environment": "adder"}, "7", sent_prompt=sent)
    assert row["prompt"][0] == sent[0] and row["environment"] == "adder"
    with pytest.raises(ValueError, match="no 'prompt'"):
        build_correction_row({"environment": "adder"}, "7")
