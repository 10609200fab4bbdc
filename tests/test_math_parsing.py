"""Tests for two-stage LaTeX parsing (cipo.rewards.math_parsing): every result equals latex2sympy's own LL parse.

Each text is parsed twice in this process, LL-only (latex2sympy as shipped) and two-stage, and the results are
compared exactly: the printed sympy tree (``srepr``), or the error message.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cipo.rewards import math_parsing
from cipo.rewards.math import MathVerifier
from cipo.rewards.math_text import gold_as_latex, gold_candidates
from cipo.rewards.math_warmup import warm_up_jobs

DATA = Path(__file__).resolve().parent / "data" / "math_verify_cases.json"
BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
BENCHMARK_SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks"


def two_stage_installed(golds: tuple[str, ...], prediction: str) -> bool:
    """Worker function: is two-stage parsing in place in this (worker) process?"""
    from latex2sympy2_extended import latex2sympy2

    return bool(getattr(latex2sympy2._Latex2Sympy, "_cipo_two_stage_parsing", None))


@pytest.fixture
def ll_and_two_stage() -> Iterator[tuple[Callable[[str], str], Callable[[str], str]]]:
    """(parse LL-only, parse two-stage) for math-verify texts and for bare LaTeX; restored to LL afterwards."""
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    def run(install: bool) -> Callable[[str], str]:
        def outcome(text: str) -> str:
            from latex2sympy2_extended.latex2sympy2 import latex2sympy
            from math_verify import parse
            from sympy import srepr

            if install:
                assert math_parsing.install()
            else:
                math_parsing.uninstall()
            parsed = [
                srepr(item) if not isinstance(item, str) else item
                for item in parse(text, parsing_timeout=None)
            ]
            try:
                direct = srepr(latex2sympy(text))
            except Exception as error:  # the error itself must be the same
                direct = f"{type(error).__name__}: {error}"
            return f"{parsed!r} | {direct}"

        return outcome

    yield run(False), run(True)
    math_parsing.uninstall()


def assert_same_outcomes(texts: list[str], ll_and_two_stage: tuple[Callable[[str], str], ...]) -> None:
    ll, two_stage = ll_and_two_stage
    different = [text for text in texts if ll(text) != two_stage(text)]
    assert not different, different[:5]


def suite_texts() -> list[str]:
    cases = json.loads(DATA.read_text())["cases"]
    return [case["pred"] for case in cases] + [gold_as_latex(case["gold"]) for case in cases]


def test_two_stage_parsing_gives_latex2sympys_results(ll_and_two_stage: tuple) -> None:
    texts = suite_texts()[::8] + [
        text for _, text in warm_up_jobs()[::16]
    ]  # all of them: the slow test below
    assert_same_outcomes(texts, ll_and_two_stage)


def test_two_stage_parsing_takes_over_and_gives_back() -> None:
    from latex2sympy2_extended import latex2sympy2

    ll_parse = latex2sympy2._Latex2Sympy.parse
    try:
        assert math_parsing.install() and math_parsing.install()  # twice: still one layer
        assert latex2sympy2._Latex2Sympy.parse is not ll_parse
    finally:
        math_parsing.uninstall()
    assert latex2sympy2._Latex2Sympy.parse is ll_parse


@pytest.mark.parametrize("two_stage", [True, False])
def test_workers_parse_in_two_stages_unless_told_not_to(two_stage: bool) -> None:
    verifier = MathVerifier(num_workers=1, worker_fn=two_stage_installed, two_stage_parsing=two_stage)
    try:
        assert verifier.score(["so \\boxed{x+1}"], ["x+1"]) == [1.0 if two_stage else 0.0]
    finally:
        verifier.close()


@pytest.mark.slow
def test_two_stage_parsing_on_all_cases_benchmark_golds_and_completions(ll_and_two_stage: tuple) -> None:
    sys.path.insert(0, str(BENCHMARK_SCRIPTS))
    import math_verifier_throughput as throughput

    if not BENCHMARKS.is_dir():
        pytest.skip(f"benchmark data not found at {BENCHMARKS}")
    golds: list[object] = []
    for name, field in [
        ("math500", "answer"),
        ("aime24", "answer"),
        ("amc23", "answer"),
        ("olympiadbench", "final_answer"),
    ]:
        rows = [
            json.loads(line) for line in (BENCHMARKS / f"{name}.test.jsonl").read_text().splitlines() if line
        ]
        golds += [row[field] for row in rows]
    latex_golds = [gold_as_latex(text) for gold in golds for text in gold_candidates(gold)]
    completions = []
    for index, make_pairs in enumerate((throughput.mixed_pairs, throughput.symbolic_pairs)):
        completions += make_pairs([str(gold) for gold in golds[:500]], 300, random.Random(index))[0]
    warm_up = [text for _, text in warm_up_jobs()]
    assert_same_outcomes(suite_texts() + warm_up + latex_golds + completions, ll_and_two_stage)
