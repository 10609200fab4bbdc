"""Synthetic program synthesis: write a tiny Python function from input/output examples, graded in the sandbox.

A problem names the shape of the function and shows a few of its values; the solution is the program::

    Write f(x) = a*x+b in Python: f(0)=3, f(1)=8, f(2)=13.

    ```python
    def f(x):
        return 5*x+3
    ```

Levels differ by formula shape (``x+b``, ``a*x+b``, ``a*x*x+b``, ``a*x-b``). Each problem's ``tests`` column (the
call style of ``cipo.rewards.code``) checks ``f`` on the shown inputs and on hidden ones, and every grade, during
training and evaluation, runs the program in the real sandbox through ``code_reward``.

A *slip* is one wrong constant (off by 1 or 2): the program runs but fails its tests, a near miss that a reviewer
who re-checks the constants against the examples can fix. The warm start learns both the slips and such reviews.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cipo.core.code_feedback import DEFAULT_CODE_INSTRUCTION
from cipo.lab.tasks import (
    check_hard_levels,
    draw_split,
    endless_problems,
    hard_tail_text,
    split_counts,
    train_levels,
)
from cipo.rewards.code import code_reward

if TYPE_CHECKING:
    from cipo.lab.tasks import TaskConfig
    from cipo.lab.warmstart import WarmStartConfig


@dataclass(frozen=True)
class Shape:
    template: str  # the body of ``return``, with {a} and {b}
    a_range: tuple[int, int] | None  # None: no ``a`` (it is 1)
    b_range: tuple[int, int]


# Difficulty level -> formula shape and the ranges of its constants.
LEVELS: dict[int, Shape] = {
    1: Shape("x+{b}", None, (0, 49)),
    2: Shape("{a}*x+{b}", (2, 9), (0, 29)),
    3: Shape("{a}*x*x+{b}", (2, 9), (0, 29)),
    4: Shape("{a}*x-{b}", (2, 9), (1, 29)),
}
SHOWN_INPUTS = (0, 1, 2)
HIDDEN_INPUTS = (3, 5, 7, 10)
SLIP_DELTAS = (-2, -1, 1, 2)
ENTRY_POINT = "f"


@dataclass(frozen=True)
class CodeProblem:
    level: int
    a: int
    b: int

    @property
    def shape(self) -> Shape:
        return LEVELS[self.level]

    @property
    def key(self) -> str:
        """Identity of the problem (train and test splits never share one)."""
        return f"{self.level}:{self.a}:{self.b}"

    def value(self, x: int) -> int:
        return int(eval(self.body(self.a, self.b), {"x": x}))  # noqa: S307 (our own arithmetic template)

    def body(self, a: int, b: int) -> str:
        return self.shape.template.format(a=a, b=b)

    @property
    def text(self) -> str:
        form = self.shape.template.format(a="a", b="b")
        shown = ", ".join(f"{ENTRY_POINT}({x})={self.value(x)}" for x in SHOWN_INPUTS)
        return f"Write {ENTRY_POINT}(x) = {form} in Python: {shown}."

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.text}]

    @property
    def tests(self) -> dict[str, Any]:
        cases = [{"args": [x], "kwargs": {}, "expected": self.value(x)} for x in SHOWN_INPUTS + HIDDEN_INPUTS]
        return {"style": "call", "entry_point": ENTRY_POINT, "cases": cases}

    def program(self, a: int | None = None, b: int | None = None) -> str:
        """The solution with constants ``a`` and ``b`` (the right ones by default), as a fenced block."""
        body = self.body(self.a if a is None else a, self.b if b is None else b)
        return f"```python\ndef {ENTRY_POINT}(x):\n    return {body}\n```"


def draw_problem(rng: random.Random, level: int) -> CodeProblem:
    shape = LEVELS[level]
    a = rng.randint(*shape.a_range) if shape.a_range else 1
    return CodeProblem(level, a, rng.randint(*shape.b_range))


def constant_names(problem: CodeProblem) -> tuple[str, ...]:
    return ("a", "b") if problem.shape.a_range else ("b",)


def slipped(value: int, rng: random.Random) -> int:
    return value + rng.choice([d for d in SLIP_DELTAS if value + d >= 0])


def draw_constants(
    problem: CodeProblem, rng: random.Random, rate: float, start: dict[str, int] | None = None
) -> dict[str, int]:
    """The constants of an attempt: each one not fixed in ``start`` slips with probability ``rate``."""
    right = {"a": problem.a, "b": problem.b}
    constants = dict(start or {})
    for name in constant_names(problem):
        if name not in constants:
            constants[name] = slipped(right[name], rng) if rng.random() < rate else right[name]
    return {**right, **constants}


def attempt_program(problem: CodeProblem, constants: dict[str, int]) -> str:
    return problem.program(constants["a"], constants["b"])


def one_slip_program(problem: CodeProblem, rng: random.Random) -> str:
    """A near miss: exactly one constant is wrong."""
    name = rng.choice(constant_names(problem))
    constants = {"a": problem.a, "b": problem.b}
    constants[name] = slipped(constants[name], rng)
    return attempt_program(problem, constants)


def is_right(problem: CodeProblem, constants: dict[str, int]) -> bool:
    return (constants["a"], constants["b"]) == (problem.a, problem.b)


def make_test_split(config: TaskConfig) -> list[CodeProblem]:
    """``test_size`` problems of ``levels``, then ``hard_test_size`` of ``hard_levels`` (keys name the level, so a
    hard problem never equals one the warm start trains on)."""
    check_hard_levels(config, sorted(LEVELS))
    seen: set[str] = set()
    base = draw_split(random.Random(f"code-test-{config.seed}"), list(zip(config.levels, split_counts(
        config.test_size, config.levels), strict=True)), draw_problem, lambda p: p.key, seen)
    hard_counts = list(zip(config.hard_levels, split_counts(config.hard_test_size, config.hard_levels), strict=True))
    return base + draw_split(random.Random(f"code-test-hard-{config.seed}"), hard_counts, draw_problem,
                             lambda p: p.key, seen)


def iter_train_problems(config: TaskConfig, stream: str, exclude: set[str]) -> Iterator[CodeProblem]:
    rng = random.Random(f"code-train-{stream}-{config.seed}")
    return endless_problems(rng, train_levels(config, stream), draw_problem, lambda problem: problem.key, exclude)


class CodeTask:
    """The lab task interface (see ``cipo.lab.task_api``) for the program-synthesis task."""

    name = "code"
    reward_name = "code_reward"
    correction_instruction = DEFAULT_CODE_INSTRUCTION

    def make_test_split(self, config: TaskConfig) -> list[CodeProblem]:
        return make_test_split(config)

    def iter_train_problems(self, config: TaskConfig, stream: str, exclude: set[str]) -> Iterator[CodeProblem]:
        return iter_train_problems(config, stream, exclude)

    def key(self, problem: CodeProblem) -> str:
        return problem.key

    def solve_text(self, problem: CodeProblem, rng: random.Random, slip_rate: float) -> str:
        return attempt_program(problem, draw_constants(problem, rng, slip_rate))

    def review_texts(self, problem: CodeProblem, rng: random.Random, config: WarmStartConfig) -> tuple[str, str]:
        """An attempt (wrong with probability ``review_wrong_fraction``) and what a careful reviewer writes: a
        right program kept, the wrong constants of a wrong one recomputed (slipping again at ``review_slip_rate``)."""
        wrong = rng.random() < config.review_wrong_fraction
        attempt = draw_constants(problem, rng, config.slip_rate)
        while is_right(problem, attempt) == wrong:
            attempt = draw_constants(problem, rng, max(config.slip_rate, 0.5) if wrong else 0.0)
        right = {"a": problem.a, "b": problem.b}
        kept = {name: value for name, value in attempt.items() if value == right[name]}
        target = attempt if not wrong else draw_constants(problem, rng, config.review_slip_rate, start=kept)
        return attempt_program(problem, attempt), attempt_program(problem, target)

    def dataset_row(self, problem: CodeProblem) -> dict[str, Any]:
        return {"prompt": problem.messages(), "tests": json.dumps(problem.tests)}

    def reward(self, completions: list, tests: list, **kwargs: Any) -> list[float]:
        """``code_reward`` (the sandbox), each distinct (program, tests) pair run once."""
        return score_unique(list(completions), list(tests), **kwargs)

    def grade(self, problems: Sequence[CodeProblem], completions: Sequence[str]) -> list[bool]:
        tests = [json.dumps(p.tests) for p in problems]
        return [score == 1.0 for score in score_unique(list(completions), tests)]

    def text(self, problem: CodeProblem) -> str:
        return problem.text

    def describe(self, task: dict) -> str:
        levels = (*task["levels"], *(task.get("hard_levels") or ()))
        shapes = ", ".join(f"`{LEVELS[level].template.format(a='a', b='b')}`" for level in levels)
        return (
            f"write a Python function from its values at {', '.join(map(str, SHOWN_INPUTS))} (shapes {shapes}, "
            f"levels {', '.join(str(x) for x in task['levels'])}), as a fenced python block; graded by "
            f"`cipo.rewards.code.code_reward` in the sandbox on the shown and {len(HIDDEN_INPUTS)} hidden inputs. "
            "Test and training problems (shape and constants) are disjoint." + hard_tail_text(task)
        )


def score_unique(completions: list, tests: list, **kwargs: Any) -> list[float]:
    """``code_reward`` on the distinct (completion, tests) pairs only; duplicates reuse the score."""
    pairs = [(str(c) if isinstance(c, str) else json.dumps(c), t) for c, t in zip(completions, tests, strict=True)]
    first: dict[tuple[str, Any], Any] = {}
    for pair, completion in zip(pairs, completions, strict=True):
        first.setdefault(pair, completion)
    unique = list(first)
    scores = code_reward([first[p] for p in unique], [t for _, t in unique], **kwargs)
    by_pair = dict(zip(unique, scores, strict=True))
    return [by_pair[pair] for pair in pairs]


CODE_TASK = CodeTask()
