"""Tests for the math verifier (cipo.rewards.math): text helpers, fast path, hedging, thinking blocks, scoring,
garbage, timeouts, real benchmark golds. Agreement with math-verify's own test cases: test_math_verify_suite.py."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cipo.rewards.math import (
    MathVerifier,
    fast_verdict,
    gold_candidates,
    last_boxed_content,
    math_reward,
    math_reward_whole_text,
    verify_with_math_verify,
)

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
SLEEP_MARKER = "SLEEP_FOREVER"
CRASH_MARKER = "CRASH_NOW"


def misbehave_on_marker(golds: tuple[str, ...], prediction: str) -> bool:
    """Worker function for the timeout tests: hangs or dies on a marker, otherwise behaves like the real one.

    Module-level so that the spawned worker can import it by name.
    """
    if SLEEP_MARKER in prediction:
        time.sleep(3600)
    if CRASH_MARKER in prediction:
        os._exit(1)
    return verify_with_math_verify(golds, prediction)


def boxed(answer: str) -> str:
    return f"Let me think step by step. The answer is \\boxed{{{answer}}}."


@pytest.fixture(scope="module")
def verifier() -> Iterator[MathVerifier]:
    # Generous: some real golds (long Minerva expressions) take sympy several seconds, more on a loaded machine.
    verifier = MathVerifier(timeout_s=30.0, num_workers=2)
    yield verifier
    verifier.close()


@pytest.fixture(scope="module")
def math_verify_only(verifier: MathVerifier) -> MathVerifier:
    """No fast path: every answer goes through math-verify in the workers."""
    math_verify_only = MathVerifier(use_fast_path=False)
    math_verify_only.pool = verifier.pool  # the same workers: their parsed-answer caches then serve both
    return math_verify_only


def process_gone(pid: int, allow_zombie: bool = False) -> bool:
    """True when ``pid`` has exited and been reaped; with ``allow_zombie``, exited is enough.

    Zombies are allowed only for orphans: reaping them is their new parent's job, not ours.
    """
    if not Path("/proc").is_dir():  # not Linux: existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return allow_zombie and state == "Z"


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# ---------------------------------------------------------------------------------------------------------------
# The fast path against math-verify (the text helpers are tested in test_math_text.py)
# ---------------------------------------------------------------------------------------------------------------


def fast_path_corpus() -> list[tuple[tuple[str, ...], str]]:
    rng = random.Random(1)
    prose = [
        "Let me compute.",
        "We have $x^2 = 4$ so $x = 2$.",
        "Therefore",
        "The answer is",
        "Answer:",
        "So",
        "**Final Answer**",
        "Final answer:",
        "The final answer is",
        "Final answer: it is",
    ]
    jobs = []
    for _ in range(150):
        gold = str(rng.randint(-30, 30))
        answer = rng.choice([gold, str(rng.randint(-30, 30)), str(rng.randint(0, 10**6))])
        answer = rng.choice([answer, "0" + answer.lstrip("-")])
        box = (
            rng.choice(["\\boxed{%s}", "$\\boxed{%s}$", "$x = \\boxed{%s}$", "\\[ \\boxed{%s} \\]"]) % answer
        )
        text = (
            " ".join(rng.sample(prose, 3))
            + f" {box}"
            + rng.choice(["", ".", " units.", " \\frac{1}{2}", " or 7"])
        )
        jobs.append(((gold,), text))
        final = rng.choice(
            ["The final answer is ${}$. I hope", "Final Answer: The final answer is ${}$.I hope it"]
        )
        extra = rng.choice(["", " \\boxed{3} ", " $\\boxed{4}$ "])
        jobs.append(((gold,), " ".join(rng.sample(prose, 3)) + extra + final.format(answer)))
        other = rng.choice([answer, str(rng.randint(-30, 30))])
        hedge = rng.choice(
            ["The answer is {} or {}", "It is either ${}$ or ${}$.", "\\boxed{{{}}} or maybe {}"]
        )
        jobs.append(((gold,), " ".join(rng.sample(prose, 2)) + " " + hedge.format(answer, other)))
    return jobs


def test_fast_path_agrees_with_math_verify() -> None:
    """Wherever the fast path decides, math-verify (in this process) decides the same."""
    decided = [(golds, text, fast_verdict(golds, text)) for golds, text in fast_path_corpus()]
    decided = [(golds, text, verdict) for golds, text, verdict in decided if verdict is not None]
    assert len(decided) >= 200 and {verdict for *_, verdict in decided} == {True, False}
    disagreements = [
        (golds, text) for golds, text, verdict in decided if verify_with_math_verify(golds, text) != verdict
    ]
    assert not disagreements


# ---------------------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "answer", "expected"),
    [
        ("42", "42", 1.0),
        ("42", "43", 0.0),
        (18, "18", 1.0),
        (27.0, "27", 1.0),
        ("27", "27.0", 1.0),
        (0.25, "\\frac{1}{4}", 1.0),
        ("\\frac{1}{2}", "0.5", 1.0),
        ("\\frac{1}{2}", "\\dfrac12", 1.0),
        ("\\frac{1}{2}", "0.6", 0.0),
        ("1,000", "1000", 1.0),
        ("x+1", "1+x", 1.0),
        ("x+1", "x+2", 0.0),
        ("6+9i", "9i+6", 1.0),
        ("3\\sqrt{13}", "\\sqrt{117}", 1.0),
        ("\\{1,2\\}", "\\{2,1\\}", 1.0),
        ("\\{1,2\\}", "\\{1,3\\}", 0.0),
        ("-2,1", "1,-2", 1.0),
        ("(2,12) \\cup (12,102)", "(12,102)\\cup(2,12)", 1.0),
        ("[1,2)", "[1,2]", 0.0),
        ("\\pi", "3.14", 0.0),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", 1.0),
        (["3", "5"], "3", 1.0),  # a list gold accepts its first element...
        (["3", "5"], "3, 5", 1.0),  # ...or all of them
        (["3", "5"], "5", 0.0),
        (["$69$,$84$"], "84, 69", 1.0),
        ("32349", "32, 349", 0.0),  # a list of two numbers, not a thousands separator
        ("\\{1,2,3\\}", "1}, \\boxed{2}, \\boxed{3", 1.0),  # three boxes forming the set
    ],
)
def test_score_pairs(verifier: MathVerifier, gold: object, answer: str, expected: float) -> None:
    assert verifier.score([boxed(answer)], [gold]) == [expected]


def test_score_keeps_order_and_deduplicates(verifier: MathVerifier) -> None:
    completions = [boxed("1+x"), boxed("2"), boxed("1+x"), "no answer", boxed("x+1")]
    golds = ["x+1", "3", "x+1", "1", "x+1"]
    assert verifier.score(completions, golds) == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_conversational_completions(verifier: MathVerifier) -> None:
    completions = [
        [{"role": "assistant", "content": "The answer is \\boxed{\\frac{1}{2}}"}],
        [{"role": "assistant", "content": [{"type": "text", "text": "#### 5"}]}],
        [{"role": "user", "content": "\\boxed{9}"}, {"role": "assistant", "content": "Answer: 8"}],
        [],
    ]
    assert verifier.score(completions, ["0.5", "5", "9", "1"]) == [1.0, 1.0, 0.0, 0.0]


def test_math_reward_accepts_trl_keyword_arguments() -> None:
    rewards = math_reward(
        prompts=["p1", "p2"],
        completions=["\\boxed{4}", "\\boxed{5}"],
        completion_ids=[[1], [2]],
        answer=["4", 4.0],
        trainer_state=None,
        log_extra=lambda *args: None,
        log_metric=lambda *args: None,
    )
    assert rewards == [1.0, 0.0]


def test_registry_finds_math_reward() -> None:
    from cipo.rewards import get_reward

    assert get_reward("math") is math_reward
    assert get_reward("math_whole_text") is math_reward_whole_text


@pytest.mark.parametrize(
    ("gold", "completion", "expected"),
    [
        ("\\{1,2,3\\}", "So the solutions are \\boxed{1}, \\boxed{2}, \\boxed{3}.", 1.0),
        ("k=45, n=2", "Thus \\boxed{k = 45} and \\boxed{n = 2}.", 1.0),
        ("-2, 1", "The integers are \\boxed{-2} and \\boxed{1}.", 1.0),
        ("2, -3", "the answer is $x = 2$ or $x = -3$", 1.0),  # "or" naming every element of a set gold
        (
            "10455",
            "so \\boxed{255} and \\boxed{200}. Final Answer: The final answer is $10,455$. I hope",
            1.0,
        ),
        ("50", ", ".join(f"\\boxed{{{i}}}" for i in range(1, 51)), 0.0),
        ("50", " ".join(f"$\\boxed{{{i}}}$" for i in range(1, 51)), 0.0),  # math-verify alone: 1
        ("3", "the answer is 3 or 4 or 5", 0.0),  # math-verify alone: 1
        ("4", "It is either 3 or 4", 0.0),  # math-verify alone: 1
        ("4", "So $x=\\boxed{3}$. Hmm, wait. So the answer is $\\boxed{4}$.", 0.0),  # math-verify alone: 1
        ("4", "**Final Answer** \\boxed{4} or maybe 5", 0.0),
        ("\\frac{5}{4}", "so $AB = \\boxed{\\frac{5}{4}}$, or $\\boxed{1.25}$.", 1.0),  # one value, two boxes
    ],
)
def test_multiple_answers(verifier: MathVerifier, gold: str, completion: str, expected: float) -> None:
    assert verifier.score([completion], [gold]) == [expected]


@pytest.mark.parametrize(
    ("completion", "after", "whole"),
    [
        ("<think>It is \\boxed{5}.</think> The answer is \\boxed{5}.", 1.0, 1.0),
        (
            "<think>It is \\boxed{5}.</think> I could not decide.",
            0.0,
            1.0,
        ),  # the answer only in the reasoning
        ("<think>Maybe 5? Or 6.</think> The answer is $6$.", 0.0, 0.0),
        ("<think>Long reasoning that ends in \\boxed{5} and is cut", 0.0, 1.0),  # never closed
        ("No thinking block: \\boxed{5}", 1.0, 1.0),
    ],
)
def test_thinking_blocks(verifier: MathVerifier, completion: str, after: float, whole: float) -> None:
    assert verifier.score([completion], ["5"]) == [after]
    whole_text = MathVerifier(think="whole")
    whole_text.pool = verifier.pool
    assert whole_text.score([completion], ["5"]) == [whole]


def test_math_reward_whole_text_grades_the_reasoning() -> None:
    completion = "<think>It is \\boxed{5}.</think>"
    assert math_reward([completion], ["5"]) == [0.0]
    assert math_reward_whole_text([completion], ["5"]) == [1.0]


def test_unknown_think_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="think"):
        MathVerifier(think="inside")


def test_fast_path_does_not_start_workers() -> None:
    verifier = MathVerifier()
    completions = [boxed("27"), boxed("28"), "", "<think>\\boxed{3}", "The answer is \\boxed{3} or maybe 4"]
    assert verifier.score(completions, [27.0, 27, "1", 3, "3"]) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert verifier.pool.worker_pids() == []


def test_settles_without_worker_tells_which_pairs_need_one() -> None:
    verifier = MathVerifier()
    assert verifier.settles_without_worker(boxed("27"), "27")  # fast path
    assert verifier.settles_without_worker("The answer is 3 or 4", "3")  # a hedge against an integer gold
    assert verifier.settles_without_worker(None, "3")  # malformed
    assert not verifier.settles_without_worker(boxed("\\frac{54}{2}"), "27")
    assert not verifier.settles_without_worker(boxed("x+1"), "x+1")
    assert verifier.pool.worker_pids() == []


def test_length_mismatch_is_an_error(verifier: MathVerifier) -> None:
    with pytest.raises(ValueError):
        verifier.score(["a", "b"], ["a"])


# ---------------------------------------------------------------------------------------------------------------
# Garbage never raises
# ---------------------------------------------------------------------------------------------------------------


def garbage_completions() -> list[object]:
    rng = random.Random(0)
    random_text = bytes(rng.randrange(256) for _ in range(5000)).decode("utf-8", errors="replace")
    return [
        None,
        "",
        "\\boxed{",
        "}}}}",
        "{{{{\\boxed{}}",
        "\\boxed{}",
        "\\boxed{\\boxed{\\boxed{",
        "\\boxed{" + "x" * 100_000 + "}",
        "y" * 100_000,
        "\\boxed{" * 10_000,
        random_text,
        "\\boxed{" + random_text + "}",
        "The answer is \x00\x01\x02",
        "\\boxed{\\frac{1}{0}}",
        "\\boxed{\\sqrt{-}}",
        "\\boxed{)(][}",
        12345,
        [{"role": "assistant"}],
        [{"content": None}],
        {"weird": "dict"},
    ]


def test_garbage_never_raises(verifier: MathVerifier) -> None:
    completions = garbage_completions()
    started = time.perf_counter()
    scores = verifier.score(completions, ["1"] * len(completions))
    assert scores == [0.0] * len(completions)
    assert time.perf_counter() - started < 30  # bounded even though some garbage reaches math-verify


def test_garbage_golds_never_raise(verifier: MathVerifier) -> None:
    golds: list[object] = [None, "", "\\boxed{", [], [None], {"a": 1}, float("inf"), object(), "9" * 5000]
    assert verifier.score([boxed("1")] * len(golds), golds) == [0.0] * len(golds)


# ---------------------------------------------------------------------------------------------------------------
# Timeouts and process hygiene
# ---------------------------------------------------------------------------------------------------------------


def test_hung_and_crashed_workers_are_replaced() -> None:
    verifier = MathVerifier(timeout_s=1.0, num_workers=2, worker_fn=misbehave_on_marker)
    try:
        assert verifier.score([boxed("1+x")], ["x+1"]) == [1.0]  # warm: startup is not part of the bound
        first_pids = verifier.pool.worker_pids()

        completions = [
            boxed(SLEEP_MARKER),
            boxed("1+x"),
            boxed(SLEEP_MARKER),
            boxed(CRASH_MARKER),
            boxed("x*2"),
        ]
        started = time.perf_counter()
        scores = verifier.score(completions, ["1", "x+1", "2", "3", "2*x"])
        elapsed = time.perf_counter() - started

        assert scores == [0.0, 1.0, 0.0, 0.0, 1.0]
        assert verifier.pool.timeouts == 2  # the crash is not a timeout
        assert elapsed < 2 * 1.0 + 30.0  # two timeouts, plus replacement workers starting on a busy machine
        assert all(process_gone(pid) for pid in first_pids)  # killed and reaped
        assert verifier.score([boxed("3+x")], ["x+3"]) == [1.0]  # the pool still works
        worker_pids = verifier.pool.worker_pids()
    finally:
        verifier.close()
    assert verifier.pool.worker_pids() == []
    assert all(process_gone(pid) for pid in worker_pids)
    ours = {*first_pids, *worker_pids}
    assert not [child for child in multiprocessing.active_children() if child.pid in ours]


def test_garbage_collected_verifier_stops_its_workers() -> None:
    verifier = MathVerifier(num_workers=1)
    assert verifier.score([boxed("1+x")], ["x+1"]) == [1.0]
    worker_pids = verifier.pool.worker_pids()
    del verifier
    gc.collect()
    assert worker_pids and all(process_gone(pid) for pid in worker_pids)


def test_worker_that_cannot_start_raises_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker function the spawned process cannot import: the worker dies before it is ready.
    module = types.ModuleType("cipo_test_module_only_in_parent")
    exec("def compare(golds, prediction):\n    return True", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    verifier = MathVerifier(num_workers=1, worker_fn=module.compare)
    with pytest.raises(RuntimeError, match="failed to start"):
        verifier.score([boxed("1+x")], ["x+1"])
    assert verifier.pool.worker_pids() == []


_CHILD_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from cipo.rewards.math import MathVerifier

    if __name__ == "__main__":
        verifier = MathVerifier(num_workers=1)
        assert verifier.score(["\\\\boxed{1+x}"], ["x+1"]) == [1.0]
        print(" ".join(map(str, verifier.pool.worker_pids())), flush=True)
        if sys.argv[1] == "hang":
            time.sleep(3600)
    """
)


def run_child(mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD_SCRIPT, mode],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_workers_stop_at_interpreter_exit() -> None:
    child = run_child("exit")
    stdout, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    worker_pids = [int(pid) for pid in stdout.split()]
    assert len(worker_pids) == 1
    assert all(process_gone(pid) for pid in worker_pids)  # stopped and reaped before the parent exited


def test_workers_exit_when_parent_is_killed() -> None:
    child = run_child("hang")
    try:
        assert child.stdout is not None
        worker_pids = [int(pid) for pid in child.stdout.readline().split()]
        assert len(worker_pids) == 1
    finally:
        child.kill()
        child.wait()
    assert wait_until(lambda: all(process_gone(pid, allow_zombie=True) for pid in worker_pids), timeout_s=10)


# ---------------------------------------------------------------------------------------------------------------
# Real benchmark golds
# ---------------------------------------------------------------------------------------------------------------


def load_rows(name: str) -> list[dict]:
    path = BENCHMARKS / f"{name}.test.jsonl"
    if not path.exists():
        pytest.skip(f"benchmark data not found at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_golds(name: str) -> list[object]:
    """Gold answers of one benchmark file, each set's field mapped explicitly (see the benchmarks README)."""
    rows = load_rows(name)
    if name == "gsm8k":
        return [row["answer"].split("####")[-1].strip().replace(",", "") for row in rows]
    if name == "minerva_math":
        return [last_boxed_content(row["solution"]) for row in rows]
    if name == "olympiadbench":
        return [row["final_answer"] for row in rows]
    return [row["answer"] for row in rows]


def test_reference_solutions_verify_against_their_golds(verifier: MathVerifier) -> None:
    # Whole human-written solutions as completions: extraction from real text, not just a lone box.
    math500 = load_rows("math500")
    scores = verifier.score([row["solution"] for row in math500], [row["answer"] for row in math500])
    assert scores == [1.0] * len(math500)
    gsm8k = load_rows("gsm8k")
    solutions = [row["answer"] for row in gsm8k]
    # As gold, a raw GSM8K solution is reduced to its "####" answer.
    scores = verifier.score(solutions, solutions)
    assert scores == [1.0] * len(gsm8k)


def gold_as_completion(gold: object) -> str:
    """A completion that boxes the gold as a model would write it: no dollar signs inside the box."""
    answer = re.sub(r"(?<!\\)\$", "", gold_candidates(gold)[0])
    return f"Let me work it out. The answer is \\boxed{{{answer}}}"


FAST_SETS = ["math500", "gsm8k", "aime24", "amc23"]
SLOW_SETS = [pytest.param(name, marks=pytest.mark.slow) for name in ("minerva_math", "olympiadbench")]


@pytest.mark.parametrize("name", FAST_SETS + SLOW_SETS)
def test_golds_verify_against_themselves(
    name: str, verifier: MathVerifier, math_verify_only: MathVerifier
) -> None:
    golds = load_golds(name)
    completions = [gold_as_completion(gold) for gold in golds]
    for label, each_verifier in (("default", verifier), ("math-verify only", math_verify_only)):
        scores = each_verifier.score(completions, golds)
        failures = [gold for gold, score in zip(golds, scores, strict=True) if score != 1.0]
        assert not failures, (
            f"{name} ({label}): {len(failures)} golds fail against themselves: {failures[:10]}"
        )


@pytest.mark.parametrize("name", FAST_SETS + SLOW_SETS)
def test_shuffled_golds_are_rejected(name: str, verifier: MathVerifier) -> None:
    golds = load_golds(name)
    completions = [gold_as_completion(gold) for gold in golds]
    count = len(golds)
    pairs = [(i, (i + 7) % count) for i in range(count) if str(golds[i]) != str(golds[(i + 7) % count])]
    scores = verifier.score([completions[j] for _, j in pairs], [golds[i] for i, _ in pairs])
    accepted = [(golds[i], golds[j]) for (i, j), score in zip(pairs, scores, strict=True) if score == 1.0]
    rejection_rate = 1 - len(accepted) / len(pairs)
    print(f"{name}: rejected {rejection_rate:.2%} of {len(pairs)} shuffled pairs; accepted: {accepted[:5]}")
    assert rejection_rate >= 0.97, f"{name}: accepted {len(accepted)} wrong answers, e.g. {accepted[:10]}"


def test_unguarded_script_does_not_rerun_in_workers(tmp_path: Path) -> None:
    """spawn workers must not re-execute a user's script that lacks an `if __name__ == "__main__"` guard."""
    marker = tmp_path / "runs.txt"
    script = tmp_path / "train.py"
    script.write_text(
        "from pathlib import Path\n"
        f"with open({str(marker)!r}, 'a') as f: f.write('x')\n"
        "from cipo.rewards.math import MathVerifier\n"
        "verifier = MathVerifier(num_workers=2, use_fast_path=False)\n"
        "print(verifier.score(['\\\\boxed{x^2}'], ['x^2']))\n"
        "verifier.close()\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[1.0]" in result.stdout
    assert marker.read_text() == "x"
