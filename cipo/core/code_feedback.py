"""Correction prompts for code attempts, optionally with execution feedback (an opt-in beyond the paper).

Code corrections use the same mechanism as every CIPO correction (``cipo.core.prompts``): the original prompt,
the model's attempt, and an instruction to review and fix it. By default the instruction carries no external
signal, as in the paper: the model must find its bugs itself.

With execution feedback switched on, the instruction also reports what happened when the attempt ran against
tests: the first failing test and its error, or that every test passed. That is information the paper's method
does not use. It makes corrections easier, and it tells the model when its attempt was already right (keeping a
correct anchor becomes trivial, so retention measures less). Feed it the visible tests of a problem rather than
the hidden ones the reward uses, unless showing those to the model is acceptable.

Pure Python, no TRL: the feedback text comes from any object with ``status``, ``failing_test`` and ``error``
(``cipo.sandbox.TestReport`` is one; ``cipo.rewards.code.code_feedback`` produces the text for a completion).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from cipo.core.prompts import (
    Prompt,
    TokenizerLike,
    build_correction_prompt,
    build_correction_row,
    with_feedback,
)

DEFAULT_CODE_INSTRUCTION = (
    "Review your previous code carefully, step by step. If you find a bug, fix it. "
    "Then write the complete final program in a single ```python code block."
)
MAX_TEST_CHARS = 400
MAX_ERROR_CHARS = 300

# Statuses (as in cipo.sandbox.testing and cipo.rewards.code) that say nothing about the attempt itself.
_SILENT_STATUSES = frozenset({"sandbox_error", "invalid_tests", "no_tests"})


class ExecutionOutcome(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def failing_test(self) -> str | None: ...

    @property
    def error(self) -> str | None: ...


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def execution_feedback(outcome: ExecutionOutcome) -> str:
    """A few lines on how an attempt fared against its tests; "" when the run says nothing about the attempt."""
    if outcome.status == "passed":
        return "All tests passed."
    if outcome.status == "no_code":
        return "No code was found in the attempt."
    if outcome.status in _SILENT_STATUSES:
        return ""
    lines = []
    test = outcome.failing_test
    if test:
        test = _clip(test, MAX_TEST_CHARS)
        lines.append(f"Failing test:\n```python\n{test}\n```" if "\n" in test else f"Failing test: {test}")
    if outcome.error:
        lines.append(f"Error: {_clip(outcome.error, MAX_ERROR_CHARS)}")
    return "\n".join(lines) or "The tests failed."


def code_correction_instruction(
    feedback: str | None = None, instruction: str = DEFAULT_CODE_INSTRUCTION
) -> str:
    """The code correction instruction, preceded by the execution feedback when there is some
    (``cipo.core.prompts.with_feedback``, as the trainer does with any feedback function)."""
    return with_feedback(feedback, instruction)


def build_code_correction_prompt(
    prompt: Prompt,
    attempt: str,
    feedback: str | None = None,
    template: str | None = None,
    instruction: str = DEFAULT_CODE_INSTRUCTION,
) -> Prompt:
    """``cipo.core.prompts.build_correction_prompt`` with the code instruction (and feedback, if given)."""
    return build_correction_prompt(
        prompt, attempt, template, code_correction_instruction(feedback, instruction)
    )


def build_code_correction_row(
    source_row: Mapping[str, Any],
    completion: Any,
    *,
    feedback: str | None = None,
    tokenizer: TokenizerLike | None = None,
    max_attempt_tokens: int | None = None,
    template: str | None = None,
    instruction: str = DEFAULT_CODE_INSTRUCTION,
) -> dict[str, Any]:
    """``cipo.core.prompts.build_correction_row`` for a code attempt; the row keeps its ``tests`` column."""
    return build_correction_row(
        source_row,
        completion,
        tokenizer=tokenizer,
        max_attempt_tokens=max_attempt_tokens,
        template=template,
        instruction=code_correction_instruction(feedback, instruction),
    )
