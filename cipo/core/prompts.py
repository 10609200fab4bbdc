"""Correction prompts: the original problem plus the model's own attempt, and a request to review and fix it.

Two prompt shapes are supported, as in TRL datasets:

* conversational (a list of ``{"role", "content"}`` messages): the conversation continues with the attempt as the
  assistant's turn and the review instruction as a new user turn;
* plain text: a template with ``{prompt}`` and ``{attempt}`` slots (and optionally ``{instruction}``).

The default instruction never says whether the attempt was right: the model must judge that itself, otherwise a
correction of a correct anchor would be trivial and retention would measure nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Message = dict[str, Any]
Prompt = str | list[Message]

DEFAULT_INSTRUCTION = (
    "Review your previous attempt carefully, step by step. If you find a mistake, correct it. "
    "Then write the complete final solution, in the same format as asked."
)

DEFAULT_TEXT_TEMPLATE = "{prompt}{attempt}\n\n{instruction}\n"

TRUNCATION_MARKER = "[...] "

# Columns that describe the original rollout rather than the problem: never copied onto correction rows.
_ROLLOUT_COLUMNS = frozenset({"prompt", "completion", "completion_ids"})


class TokenizerLike(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


def is_conversational_prompt(prompt: Any) -> bool:
    return isinstance(prompt, list) and all(isinstance(m, Mapping) and "role" in m for m in prompt)


def attempt_text(completion: Any) -> str:
    """The text of a completion, whether TRL gave it as a string or as a list of assistant messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        parts = [m.get("content", "") for m in completion if isinstance(m, Mapping)]
        return "".join(p if isinstance(p, str) else _content_to_text(p) for p in parts)
    raise TypeError(f"completion must be a string or a list of messages, got {type(completion).__name__}")


def _content_to_text(content: Any) -> str:
    if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}, ...]
        return "".join(block.get("text", "") for block in content if isinstance(block, Mapping))
    return str(content)


def truncate_attempt(attempt: str, tokenizer: TokenizerLike | None, max_tokens: int | None) -> str:
    """Keep the last ``max_tokens`` tokens of an attempt (its end holds the final answer)."""
    if tokenizer is None or max_tokens is None or max_tokens <= 0:
        return attempt
    ids = tokenizer.encode(attempt, add_special_tokens=False)
    if len(ids) <= max_tokens:
        return attempt
    return TRUNCATION_MARKER + tokenizer.decode(ids[-max_tokens:], skip_special_tokens=True)


def validate_text_template(template: str) -> None:
    """Raise ValueError unless the template has both ``{prompt}`` and ``{attempt}`` slots and formats cleanly."""
    for slot in ("{prompt}", "{attempt}"):
        if slot not in template:
            raise ValueError(f"correction_template must contain the slot {slot}; got {template!r}")
    try:
        template.format(prompt="", attempt="", instruction="")
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"correction_template {template!r} does not format with the slots prompt, attempt, instruction: {error!r}"
        ) from error


FEEDBACK_INTRO = "Your previous attempt was checked."


def with_feedback(feedback: str | None, instruction: str = DEFAULT_INSTRUCTION) -> str:
    """The instruction preceded by external feedback (opt-in; the paper's method uses none)."""
    if not feedback:
        return instruction
    return f"{FEEDBACK_INTRO}\n{feedback}\n\n{instruction}"


def build_correction_prompt(
    prompt: Prompt,
    attempt: str,
    template: str | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
) -> Prompt:
    """The prompt that asks the policy to review and fix ``attempt``, in the same shape as ``prompt``."""
    if is_conversational_prompt(prompt):
        return [
            *[dict(m) for m in prompt],
            {"role": "assistant", "content": attempt},
            {"role": "user", "content": instruction},
        ]
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string or a list of messages, got {type(prompt).__name__}")
    return (template or DEFAULT_TEXT_TEMPLATE).format(prompt=prompt, attempt=attempt, instruction=instruction)


def build_correction_row(
    source_row: Mapping[str, Any],
    completion: Any,
    *,
    tokenizer: TokenizerLike | None = None,
    max_attempt_tokens: int | None = None,
    template: str | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
) -> dict[str, Any]:
    """A dataset row for a correction: the source row's columns (``answer``, ``tests``...) with a new prompt.

    Reward functions receive the same columns as for the original rollout, so they score corrections unchanged.
    """
    attempt = truncate_attempt(attempt_text(completion), tokenizer, max_attempt_tokens)
    row = {key: value for key, value in source_row.items() if key not in _ROLLOUT_COLUMNS}
    row["prompt"] = build_correction_prompt(source_row["prompt"], attempt, template, instruction)
    return row
