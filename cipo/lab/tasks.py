"""Synthetic, verifiable reasoning task: chains of additions and subtractions solved step by step.

A problem reads ``Compute 23+45-17+8.`` and its worked solution computes one operation per line, carrying the
running total, then states the answer in ``\\boxed{}``::

    23+45=68
    68-17=51
    51+8=59
    \\boxed{59}

A *slip* is one wrong step result (off by 1 or 10, the mistakes people make), after which the solution carries on
consistently from the wrong value: the final answer is then wrong, but the error is local and a reviewer who
re-checks each step can fix it. The warm-start data teaches both the slips and how to review them (see
``review_target``), so the errors of the warm model are the kind a correction can fix.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

# Difficulty level -> (number of terms, largest operand).
LEVELS: dict[int, tuple[int, int]] = {
    0: (2, 9),
    1: (3, 9),
    2: (4, 9),
    3: (5, 9),
    4: (5, 19),
    5: (6, 49),
}
SLIP_DELTAS = (-10, -1, 1, 10)


@dataclass
class TaskConfig:
    name: str = field(
        default="math", metadata={"help": "The task: 'math' (this module) or 'code' (cipo.lab.code_task)."}
    )
    levels: tuple[int, ...] = field(
        default=(1, 2, 3), metadata={"help": f"Difficulty levels to mix, from {sorted(LEVELS)} (terms, max operand)."}
    )
    test_size: int = field(default=96, metadata={"help": "Held-out problems (split evenly over the levels)."})
    hard_levels: tuple[int, ...] = field(
        default=(4,),
        metadata={"help": "The hard tail: levels added to the held-out split and to the RL problems, never to the "
                  "warm start's data (disjoint from `levels`)."},
    )
    hard_test_size: int = field(default=32, metadata={"help": "Held-out problems of the hard tail."})
    seed: int = field(default=1234, metadata={"help": "Seed of the problem generators (the data, not the training)."})
    instruction: str = field(
        default="",
        metadata={"help": "Appended to every problem's text (e.g. a pretrained model's answer format); '' = none."},
    )


@dataclass(frozen=True)
class Problem:
    terms: tuple[int, ...]
    ops: tuple[str, ...]
    level: int
    instruction: str = field(default="", compare=False)  # TaskConfig.instruction; not part of the problem's identity

    @property
    def expression(self) -> str:
        return str(self.terms[0]) + "".join(f"{op}{term}" for op, term in zip(self.ops, self.terms[1:], strict=True))

    @property
    def text(self) -> str:
        return f"Compute {self.expression}."

    @property
    def answer(self) -> int:
        return run_steps(self, slips={})[-1].result

    def messages(self) -> list[dict[str, str]]:
        """The prompt as a conversation, the shape TRL datasets and ``build_correction_prompt`` use."""
        content = f"{self.text} {self.instruction}" if self.instruction else self.text
        return [{"role": "user", "content": content}]


@dataclass(frozen=True)
class Step:
    left: int
    op: str
    right: int
    result: int

    @property
    def is_locally_correct(self) -> bool:
        return self.result == apply(self.left, self.op, self.right)

    def __str__(self) -> str:
        return f"{self.left}{self.op}{self.right}={self.result}"


def apply(left: int, op: str, right: int) -> int:
    return left + right if op == "+" else left - right


def run_steps(problem: Problem, slips: dict[int, int], start: list[Step] | None = None) -> list[Step]:
    """Steps of the worked solution; ``slips`` maps a step index to the error added to its result.

    ``start`` holds already written steps to continue from (a review keeps the steps it checked).
    """
    steps = list(start or [])
    total = steps[-1].result if steps else problem.terms[0]
    for index in range(len(steps), len(problem.ops)):
        op, right = problem.ops[index], problem.terms[index + 1]
        result = apply(total, op, right) + slips.get(index, 0)
        steps.append(Step(total, op, right, result))
        total = result
    return steps


def format_solution(steps: list[Step]) -> str:
    return "\n".join(str(step) for step in steps) + f"\n\\boxed{{{steps[-1].result}}}"


def draw_problem(rng: random.Random, level: int) -> Problem:
    num_terms, max_operand = LEVELS[level]
    terms, ops = [rng.randint(1, max_operand)], []
    total = terms[0]
    for _ in range(num_terms - 1):
        term = rng.randint(1, max_operand)
        op = "-" if term <= total and rng.random() < 0.5 else "+"
        total = apply(total, op, term)
        terms.append(term)
        ops.append(op)
    return Problem(tuple(terms), tuple(ops), level)


def draw_slips(rng: random.Random, problem: Problem, rate: float, first: int = 0) -> dict[int, int]:
    """Each step from ``first`` on slips with probability ``rate``; a slip never makes a result negative."""
    slips: dict[int, int] = {}
    total = problem.terms[0]
    for index in range(len(problem.ops)):
        correct = apply(total, problem.ops[index], problem.terms[index + 1])
        if index >= first and rng.random() < rate:
            # (after an earlier slip a total can go negative: then any upward slip will do)
            deltas = [d for d in SLIP_DELTAS if correct + d >= 0] or [1, 10]
            slips[index] = rng.choice(deltas)
        total = correct + slips.get(index, 0)
    return slips


def solve(problem: Problem, rng: random.Random, slip_rate: float) -> list[Step]:
    """A worked solution in which each step slips with probability ``slip_rate``."""
    return run_steps(problem, draw_slips(rng, problem, slip_rate))


def solve_with_one_slip(problem: Problem, rng: random.Random) -> list[Step]:
    """A near miss: exactly one step is wrong, so the final answer is wrong."""
    index = rng.randrange(len(problem.ops))
    slips = draw_slips(rng, problem, rate=1.0, first=index)
    return run_steps(problem, {index: slips[index]})


def first_wrong_step(steps: list[Step]) -> int | None:
    return next((i for i, step in enumerate(steps) if not step.is_locally_correct), None)


def review_target(problem: Problem, attempt: list[Step], rng: random.Random, slip_rate: float) -> list[Step]:
    """What a careful reviewer writes: the checked steps are kept, the first wrong one is redone and the rest
    recomputed (with fresh slips at ``slip_rate``, so a review can itself fail). A correct attempt is kept as is."""
    wrong = first_wrong_step(attempt)
    if wrong is None:
        return list(attempt)
    slips = draw_slips(rng, problem, slip_rate, first=wrong)
    return run_steps(problem, slips, start=attempt[:wrong])


@dataclass
class Splits:
    train: list[Problem]
    test: list[Problem]


def split_counts(total: int, levels: Sequence[int]) -> list[int]:
    """``total`` split evenly over ``levels``, the first levels taking the remainder."""
    counts = [total // len(levels)] * len(levels) if levels else []
    for i in range(total % len(levels) if levels else 0):
        counts[i] += 1
    return counts


def check_hard_levels(config: TaskConfig, known: Sequence[int]) -> None:
    for level in (*config.levels, *config.hard_levels):
        if level not in known:
            raise ValueError(f"task level {level} does not exist; levels: {', '.join(map(str, known))}")
    shared = set(config.levels) & set(config.hard_levels)
    if shared:
        raise ValueError(f"task.hard_levels {config.hard_levels} must be disjoint from task.levels {config.levels}: "
                         f"the warm start never sees the hard tail (shared: {sorted(shared)})")


def draw_split(
    rng: random.Random,
    counts: Sequence[tuple[int, int]],
    draw: Callable[[random.Random, int], T],
    key: Callable[[T], str],
    seen: set[str],
    allowed: Callable[[T], bool] = lambda problem: True,
) -> list[T]:
    """``count`` distinct problems of each ``(level, count)``, skipping keys in ``seen`` (which it extends)."""
    problems: list[T] = []
    for level, count in counts:
        while count > 0:
            problem = draw(rng, level)
            if key(problem) not in seen and allowed(problem):
                seen.add(key(problem))
                problems.append(problem)
                count -= 1
    return problems


def base_reachable(problem: Problem, levels: Sequence[int]) -> bool:
    """Whether a problem of one of ``levels`` could have this expression (so the warm start could train on it)."""
    return any(len(problem.terms) == LEVELS[level][0] and max(problem.terms) <= LEVELS[level][1] for level in levels)


def make_test_split(config: TaskConfig) -> list[Problem]:
    """The held-out split: ``test_size`` problems of ``levels``, then ``hard_test_size`` of ``hard_levels``, none of
    which a problem of ``levels`` could equal (so hard problems never change the warm start's data)."""
    check_hard_levels(config, sorted(LEVELS))
    seen: set[str] = set()
    base = draw_split(random.Random(f"test-{config.seed}"), list(zip(config.levels, split_counts(
        config.test_size, config.levels), strict=True)), draw_problem, lambda p: p.expression, seen)
    hard_counts = list(zip(config.hard_levels, split_counts(config.hard_test_size, config.hard_levels), strict=True))
    hard = draw_split(random.Random(f"test-hard-{config.seed}"), hard_counts, draw_problem, lambda p: p.expression,
                      seen, allowed=lambda p: not base_reachable(p, config.levels))
    return [with_instruction(problem, config) for problem in base + hard]


def with_instruction(problem: Problem, config: TaskConfig) -> Problem:
    return dataclasses.replace(problem, instruction=config.instruction) if config.instruction else problem


def endless_problems(
    rng: random.Random,
    levels: Sequence[int],
    draw: Callable[[random.Random, int], T],
    key: Callable[[T], str],
    exclude: set[str],
) -> Iterator[T]:
    """Problems of random levels drawn forever, skipping those whose key is in ``exclude`` (the test split)."""
    while True:
        problem = draw(rng, rng.choice(levels))
        if key(problem) not in exclude:
            yield problem


def hard_tail_text(task: dict) -> str:
    """The report's sentence on the hard tail (absent from reports written before there was one)."""
    levels, count = task.get("hard_levels") or (), task.get("hard_test_size", 0)
    if not levels or not count:
        return ""
    return (f" Hard tail: {count} held-out problems of level(s) {', '.join(map(str, levels))}, also in the RL "
            "problems but never in the warm start's data.")


def train_levels(config: TaskConfig, stream: str) -> tuple[int, ...]:
    """The levels of a training stream: the RL stream (``rl``) adds the hard tail, the warm start's does not."""
    return (*config.levels, *config.hard_levels) if stream == "rl" else config.levels


def iter_train_problems(config: TaskConfig, stream: str, exclude: set[str]) -> Iterator[Problem]:
    """An endless seeded stream of training problems, none of which is in ``exclude`` (the test split)."""
    rng = random.Random(f"train-{stream}-{config.seed}")
    problems = endless_problems(rng, train_levels(config, stream), draw_problem, lambda problem: problem.expression,
                                exclude)
    return (with_instruction(problem, config) for problem in problems)


def take_train_problems(config: TaskConfig, stream: str, count: int, exclude: set[str]) -> list[Problem]:
    stream_iter = iter_train_problems(config, stream, exclude)
    return [next(stream_iter) for _ in range(count)]


def make_splits(config: TaskConfig, train_size: int, stream: str = "rl") -> Splits:
    test = make_test_split(config)
    exclude = {p.expression for p in test}
    return Splits(train=take_train_problems(config, stream, train_size, exclude), test=test)
