import pytest

from cipo.builtin_models import char_tokenizer
from cipo.core.prompts import (
    DEFAULT_INSTRUCTION,
    TRUNCATION_MARKER,
    attempt_text,
    build_correction_prompt,
    build_correction_row,
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
