"""Code correction prompts and execution feedback (cipo.core.code_feedback): pure, no TRL, no sandbox."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from cipo.core.code_feedback import (
    DEFAULT_CODE_INSTRUCTION,
    build_code_correction_prompt,
    build_code_correction_row,
    code_correction_instruction,
    execution_feedback,
)
from cipo.core.prompts import FEEDBACK_INTRO
from cipo.sandbox.testing import TestOutcome, TestReport


@dataclass(frozen=True)
class Outcome:
    status: str
    failing_test: str | None = None
    error: str | None = None


def test_feedback_text() -> None:
    assert execution_feedback(Outcome("passed")) == "All tests passed."
    assert execution_feedback(Outcome("no_code")) == "No code was found in the attempt."
    assert execution_feedback(Outcome("sandbox_error", "t", "e")) == ""
    assert execution_feedback(Outcome("failed", "assert f(1) == 2", "AssertionError: 3 == 2 is false")) == (
        "Failing test: assert f(1) == 2\nError: AssertionError: 3 == 2 is false"
    )
    multi_line = execution_feedback(
        Outcome("timeout", "for x in range(3):\n    assert f(x)", "time limit exceeded")
    )
    assert (
        multi_line
        == "Failing test:\n```python\nfor x in range(3):\n    assert f(x)\n```\nError: time limit exceeded"
    )
    assert execution_feedback(Outcome("failed")) == "The tests failed."
    long = execution_feedback(Outcome("failed", "x" * 5000, "y" * 5000))
    assert len(long) < 800 and long.count("...") == 2


def test_feedback_from_a_test_report() -> None:
    report = TestReport(
        "failed", (TestOutcome("assert ok()", True), TestOutcome("assert f() == 1", False, "boom"))
    )
    assert execution_feedback(report) == "Failing test: assert f() == 1\nError: boom"


def test_instruction_with_and_without_feedback() -> None:
    assert code_correction_instruction() == DEFAULT_CODE_INSTRUCTION
    assert code_correction_instruction("") == DEFAULT_CODE_INSTRUCTION
    with_feedback = code_correction_instruction("Failing test: assert f()")
    assert with_feedback == f"{FEEDBACK_INTRO}\nFailing test: assert f()\n\n{DEFAULT_CODE_INSTRUCTION}"
    # Without feedback the instruction must not hint whether the attempt was right.
    assert (
        "wrong" not in DEFAULT_CODE_INSTRUCTION.lower()
        and "incorrect" not in DEFAULT_CODE_INSTRUCTION.lower()
    )


def test_correction_prompts_reuse_the_cipo_mechanism() -> None:
    chat = [{"role": "user", "content": "Write f."}]
    prompt = build_code_correction_prompt(chat, "```python\ndef f(): pass\n```", feedback="Error: boom")
    assert prompt[:2] == [chat[0], {"role": "assistant", "content": "```python\ndef f(): pass\n```"}]
    assert prompt[2]["role"] == "user" and prompt[2]["content"].startswith(FEEDBACK_INTRO + "\nError: boom")
    text = build_code_correction_prompt("Write f.\n", "def f(): pass")
    assert text == f"Write f.\ndef f(): pass\n\n{DEFAULT_CODE_INSTRUCTION}\n"
    row = {"prompt": chat, "completion": "old", "tests": ["assert f()"], "completion_ids": [1]}
    correction = build_code_correction_row(row, [{"role": "assistant", "content": "def f(): pass"}])
    assert correction["tests"] == ["assert f()"] and "completion" not in correction
    assert correction["prompt"][-1]["content"] == DEFAULT_CODE_INSTRUCTION


def test_imports_no_trl_and_no_sandbox() -> None:
    code = (
        "import sys\nimport cipo.core.code_feedback\n"
        "assert not any(m == 'trl' or m.startswith(('trl.', 'cipo.sandbox', 'torch')) for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
