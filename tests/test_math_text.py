"""Tests for the text side of the math verifier (cipo.rewards.math_text): boxes, graded text, golds, hedging,
the fast path's decisions. Nothing here starts a worker or imports math-verify."""

from __future__ import annotations

import time

import pytest

from cipo.rewards.math_text import (
    alternatives_offered,
    extract_answer,
    fast_verdict,
    final_boxes,
    gold_candidates,
    graded_text,
    normalize_answer,
    outer_boxed_contents,
)

# ---------------------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{42}.", "42"),
        ("first \\boxed{1}, then finally \\boxed{2}", "2"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\boxed{\\left\\{ x \\right.}", "\\left\\{ x \\right."),  # escaped braces do not count
        ("$\\boxed {x^{2}+1}$", "x^{2}+1"),
        ("\\fbox{7}", "7"),
        ("the result is $\\boxed 5$", "5"),
        ("\\boxed{\\boxed{3}}", "3"),  # nested: the innermost (last) box
        ("\\boxed{4} but then \\boxed{", "4"),  # a truncated last box: the last complete one
        ("The answer is 12.", "12"),
        ("So the answer is $\\frac{3}{4}$, as claimed.", "\\frac{3}{4}"),
        ("the answer is 18 eggs.", "18"),
        ("the answer is: 1,000 dollars", "1,000"),
        ("Answer: x+1", "x+1"),
        ("**Answer:** 7", "7"),
        ("Final Answer: The final answer is $-3$. I hope it is correct.", "-3"),
        ("Final Answer: The final answer is 10. I hope it is correct.", "10"),
        ("She makes 9 * 2 = $18.\n#### 18", "18"),
        ("The answer is 5. Wait, no: the answer is 6.", "6"),
        ("\\boxed{9} is what the answer is 8 suggests", "9"),  # a box beats answer phrases
    ],
)
def test_extract_answer(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", ["", "no answer here", "\\boxed{", "}}}}", "\\boxed{{{", "\\boxed"])
def test_extract_answer_finds_nothing(text: str) -> None:
    assert extract_answer(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "\\boxed{1}" + "\\boxed{" * 20_000,  # many unclosed boxes after a closed one
        "answer: " * 20_000,  # many phrases on one line
        "the answer is " + "1" * 100_000 + "x",
        "the answer is " + "$" * 100_000,
        "#### " + "1," * 50_000,
    ],
    ids=["unclosed-boxes", "repeated-phrases", "long-number", "dollars", "commas"],
)
def test_extraction_stays_fast_on_adversarial_input(text: str) -> None:
    started = time.perf_counter()
    extract_answer(text)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("gold", "expected"),
    [
        ("42", ("42",)),
        (27.0, ("27",)),
        (0.5, ("0.5",)),
        (7, ("7",)),
        (["$69$,$84$"], ("$69$,$84$",)),
        (["3", "5"], ("3", "3, 5")),
        ([], ()),
        (None, ()),
        (float("nan"), ()),
        ("Janet sells 16 - 3 - 4 = 9 eggs.\n#### 1,234", ("1234",)),
        ("so $x=\\boxed{5}$.", ("5",)),
    ],
)
def test_gold_candidates(gold: object, expected: tuple[str, ...]) -> None:
    assert gold_candidates(gold) == expected


def test_normalize_answer() -> None:
    assert normalize_answer(" $\\left( 1, 2 \\right)$. ") == "(1,2)"
    assert normalize_answer("1,000") == normalize_answer("1000") == "1000"
    assert normalize_answer("-2,1") == "-2,1"  # a list, not a thousands separator
    assert normalize_answer("\\dfrac{1}{2}") == "\\frac{1}{2}"
    assert normalize_answer("\\leftarrow") == "\\leftarrow"


def test_outer_boxed_contents() -> None:
    assert outer_boxed_contents("\\boxed{1}, \\boxed{\\frac{1}{2}} and \\fbox{x}") == [
        "1",
        "\\frac{1}{2}",
        "x",
    ]
    assert outer_boxed_contents("\\boxed{\\boxed{3}}") == ["\\boxed{3}"]  # nested boxes are one answer
    assert outer_boxed_contents("\\boxed{4} but then \\boxed{") == ["4"]
    assert outer_boxed_contents("\\boxed 5 and }{") == []


@pytest.mark.parametrize(
    ("text", "think", "expected"),
    [
        ("<think>maybe \\boxed{5}</think> So \\boxed{6}", "after", " So \\boxed{6}"),
        ("<think>a</think> b <think>c</think>d", "after", "d"),  # after the last block
        ("<think>maybe \\boxed{5} and then the output was cut", "after", ""),  # never closed: no answer
        ("no thinking \\boxed{5}", "after", "no thinking \\boxed{5}"),
        (
            "the answer as a percentage is 33.3%, so 33\n#### 1,033\n",
            "after",
            "\\boxed{1033}",
        ),  # GSM8K format
        ("#### 5\nthen more", "after", "#### 5\nthen more"),  # "####" counts only on the last line
        ("<think>maybe \\boxed{5}</think>", "whole", "<think>maybe \\boxed{5}</think>"),
    ],
)
def test_graded_text(text: str, think: str, expected: str) -> None:
    assert graded_text(text, think) == expected


def test_graded_text_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="think"):
        graded_text("x", "inside")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{5}", ["5"]),
        ("\\boxed{5} and again \\boxed{ 5 }", ["5"]),  # the same answer twice
        (", ".join(f"\\boxed{{{i}}}" for i in range(1, 4)), ["1", "2", "3"]),
        ("\\boxed{200} then \\boxed{255}. Final Answer: The final answer is $10,455$.", []),  # intermediate
        ("Final Answer: \\boxed{3} \\boxed{4}", ["3", "4"]),
    ],
)
def test_final_boxes(text: str, expected: list[str]) -> None:
    assert final_boxes(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the answer is 3 or 4 or 5", 3),
        ("The answer is 3, 4, or 5.\n\nI hope this helps!", 3),  # the last sentence that holds a number
        ("It is either 3 or 4", 2),
        ("**Final Answer** \\boxed{4} or maybe 5", 2),
        ("the answer is $x = 2$ or $x = -3$", 2),
        ("the answer is 0.5, or 0.50", 1),  # one value restated
        ("the answer is 1, 2, 3", 0),  # a list without "or" is one (set) answer
        ("Only $\\boxed{49}$ leaves remainder 1 when divided by 2, 3, 4, or 6.", 0),  # a list in prose
        ("if x = 3 or x = 4 we check both. Only x = 4 works. The answer is 4.", 0),  # an earlier sentence
    ],
)
def test_alternatives_offered(text: str, expected: int) -> None:
    assert alternatives_offered(text) == expected


@pytest.mark.parametrize(
    ("golds", "text", "expected"),
    [
        (["27"], "so \\boxed{27}.", True),
        (["27"], "so $\\boxed{-27}$.", False),
        (["7"], "\\boxed{007}", True),
        (["27", "28"], "\\boxed{28}", True),
        (["1"], "  \n ", False),
        (["1"], "\\boxed{1} or maybe \\boxed{2}", None),  # two boxes: math-verify reads them
        (["1"], "The answer is \\boxed{1} or maybe 2", False),  # a hedge
        (["32349"], "\\boxed{32, 349}", None),  # not an integer: math-verify decides (a set, so 0)
        (["1000"], "\\boxed{1,000}", None),
        (["27"], "\\boxed{27.0}", None),
        (["27"], "\\boxed{27} Final answer is 28", None),  # "final answer ... is" outranks a box
        (["27"], "\\boxed{27}. Final answer,\nwe find, is 28", None),
        (["27"], "**Final Answer**\n\\[\n\\boxed{27}\n\\]", True),  # a heading ranks below the box
        (["27"], "Final answer: $\\boxed{28}$", False),
        (["27"], "\\boxed{27} Final answer: 28", True),  # math-verify reads 27: the box outranks "answer:"
        (["27"], "\\fbox{27}", None),
        (["27"], "\\boxed 27", None),
        (["x+1"], "\\boxed{27}", None),
        (["27"], "The answer is 27.", None),
        (["27"], "Final Answer: The final answer is $27$. I hope it is correct.", True),
        (["27"], "Final Answer: The final answer is $28$. I hope it is correct.", False),
        (["27"], "Final Answer: The final answer is $27$.", None),  # no "I hope": a lower-priority pattern
        (["27"], "final answer is $27$. I hope. The final answer is 28", None),  # two phrases
        (["27"], "The final answer is $1,027$. I hope", None),
        (["3"], "The answer is 3 or 4", False),  # alternatives, integer gold: a hedge whatever is parsed
        (["3"], "We get $x = 5$. It is either $3$ or $4$.", False),
        (["3"], "The answer is 3 or 3.0", None),  # one value stated twice: math-verify decides
        (["3"], "The answer is 3 or 4. So it is 3.", None),  # the last sentence commits to one answer
        (["3", "-2, 3"], "The answer is 3 or 4", None),  # a list gold may have two elements
        (["x+1"], "The answer is 3 or 4", None),
    ],
)
def test_fast_verdict(golds: list[str], text: str, expected: bool | None) -> None:
    assert fast_verdict(golds, text) is expected
