"""The lab's tasks behind one interface, chosen by ``task.name``: ``math`` (``cipo.lab.tasks``, the default) and
``code`` (``cipo.lab.code_task``). Everything task-specific the lab does goes through a ``LabTask``: splits,
warm-start texts, the RL dataset and reward, grading for evaluation, and the report's description."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from cipo.core.prompts import DEFAULT_INSTRUCTION
from cipo.lab import tasks
from cipo.rewards.math import math_reward

if TYPE_CHECKING:
    from cipo.lab.tasks import TaskConfig
    from cipo.lab.warmstart import WarmStartConfig


class LabTask(Protocol):
    name: str
    reward_name: str  # TRL logs rewards/<reward_name>/mean
    correction_instruction: str  # the review request of warm-start reviews, CIPO and the evaluation

    def make_test_split(self, config: TaskConfig) -> list: ...

    def iter_train_problems(self, config: TaskConfig, stream: str, exclude: set[str]) -> Iterator: ...

    def key(self, problem: Any) -> str: ...

    def solve_text(self, problem: Any, rng: random.Random, slip_rate: float) -> str: ...

    def review_texts(self, problem: Any, rng: random.Random, config: WarmStartConfig) -> tuple[str, str]: ...

    def dataset_row(self, problem: Any) -> dict[str, Any]: ...

    def reward(self, completions: list, **columns: Any) -> list[float]: ...

    def grade(self, problems: Sequence[Any], completions: Sequence[str]) -> list[bool]: ...

    def text(self, problem: Any) -> str: ...

    def describe(self, task: dict) -> str: ...


class MathTask:
    """Chains of additions and subtractions (``cipo.lab.tasks``), graded by ``math_reward``."""

    name = "math"
    reward_name = "math_reward"
    correction_instruction = DEFAULT_INSTRUCTION

    def make_test_split(self, config: TaskConfig) -> list[tasks.Problem]:
        return tasks.make_test_split(config)

    def iter_train_problems(self, config: TaskConfig, stream: str, exclude: set[str]) -> Iterator[tasks.Problem]:
        return tasks.iter_train_problems(config, stream, exclude)

    def key(self, problem: tasks.Problem) -> str:
        return problem.expression

    def solve_text(self, problem: tasks.Problem, rng: random.Random, slip_rate: float) -> str:
        return tasks.format_solution(tasks.solve(problem, rng, slip_rate))

    def review_texts(self, problem: tasks.Problem, rng: random.Random, config: WarmStartConfig) -> tuple[str, str]:
        wrong = rng.random() < config.review_wrong_fraction
        attempt = tasks.solve(problem, rng, config.slip_rate)
        while (attempt[-1].result != problem.answer) != wrong:  # resample until the attempt is as intended
            attempt = tasks.solve(problem, rng, max(config.slip_rate, 0.3) if wrong else 0.0)
        target = tasks.review_target(problem, attempt, rng, config.review_slip_rate)
        return tasks.format_solution(attempt), tasks.format_solution(target)

    def dataset_row(self, problem: tasks.Problem) -> dict[str, Any]:
        return {"prompt": problem.messages(), "answer": str(problem.answer)}

    def reward(self, completions: list, answer: list, **kwargs: Any) -> list[float]:
        return math_reward(completions, answer)

    def grade(self, problems: Sequence[tasks.Problem], completions: Sequence[str]) -> list[bool]:
        answers = [str(p.answer) for p in problems]
        return [score == 1.0 for score in math_reward(list(completions), answers)]

    def text(self, problem: tasks.Problem) -> str:
        return problem.text

    def describe(self, task: dict) -> str:
        return (
            f"chains of additions and subtractions (levels {', '.join(str(x) for x in task['levels'])}), answered in "
            "`\\boxed{}` (the lab's warm start learns to solve them one operation per line); graded by "
            "`cipo.rewards.math.math_reward`. Test and training problems are disjoint." + instruction_text(task)
            + tasks.hard_tail_text(task)
        )


def instruction_text(task: dict) -> str:
    instruction = task.get("instruction")
    return f" Every problem is followed by the instruction `{instruction}`." if instruction else ""


def get_task(name: str) -> LabTask:
    if name == "math":
        return MathTask()
    if name == "code":
        from cipo.lab.code_task import CODE_TASK

        return CODE_TASK
    raise ValueError(f"unknown lab task {name!r}; tasks: code, math")


TASK_NAMES = ("math", "code")
