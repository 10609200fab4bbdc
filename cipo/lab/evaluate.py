"""Held-out evaluation of one model: pass@k (unbiased, k = 1..n), greedy accuracy and two-turn self-correction.

Sampling uses the training temperature. Every batch of generations is seeded from the evaluation seed and its
index, so results do not depend on what ran before. Scores come from the task's grader (``math_reward``; for
code, ``code_reward`` in the sandbox) and estimators (``cipo.eval.metrics``), the same ones a user's own evaluation would use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from cipo.core.prompts import build_correction_prompt
from cipo.eval.metrics import correction_rates, estimate, pass_at_k_curve
from cipo.lab.task_api import LabTask, MathTask

Messages = list[dict[str, str]]


@dataclass
class EvalConfig:
    num_samples: int = field(default=64, metadata={"help": "Samples per problem for pass@k (k = 1..num_samples)."})
    correction_attempts: int = field(
        default=8, metadata={"help": "Turn-1 samples per problem that are reviewed (one turn-2 sample each)."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (the training one)."})
    max_new_tokens: int = field(default=80, metadata={"help": "Generation limit per completion."})
    batch_size: int = field(default=512, metadata={"help": "Sequences generated together."})
    seed: int = field(default=0, metadata={"help": "Seed of the evaluation samples."})


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Messages],
    config: EvalConfig,
    num_per_prompt: int = 1,
    greedy: bool = False,
    stream: int = 0,
    bar: tqdm | None = None,
) -> list[list[str]]:
    """``num_per_prompt`` completions of each conversational prompt, decoded without special tokens.

    Batch ``b`` of random stream ``stream`` is seeded with (seed, stream, b): the same call gives the same texts.
    """
    prompt_ids = [_chat_ids(tokenizer, prompt) for prompt in prompts]
    jobs = [index for index in range(len(prompts)) for _ in range(num_per_prompt)]
    texts: list[str] = []
    for batch_index, start in enumerate(range(0, len(jobs), config.batch_size)):
        batch = [prompt_ids[i] for i in jobs[start : start + config.batch_size]]
        torch.manual_seed((config.seed * 1_000 + stream) * 100_003 + batch_index)
        texts += _generate_batch(model, tokenizer, batch, config, greedy)
        if bar is not None:
            bar.update(1)
    return [texts[i * num_per_prompt : (i + 1) * num_per_prompt] for i in range(len(prompts))]


def num_batches(num_sequences: int, config: EvalConfig) -> int:
    return -(-num_sequences // config.batch_size)


def _chat_ids(tokenizer: PreTrainedTokenizerBase, prompt: Messages) -> list[int]:
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def _generate_batch(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    batch: list[list[int]],
    config: EvalConfig,
    greedy: bool,
) -> list[str]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(batch):  # left padding, as TRL does
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention_mask[row, width - len(ids) :] = 1
    sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": config.temperature, "top_k": 0, "top_p": 1.0}
    output = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=config.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **sampling,
    )
    return tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)


def grade_groups(task: LabTask, problems: Sequence, groups: Sequence[Sequence[str]]) -> list[list[bool]]:
    """Grades of each problem's completions, all graded in one call (one sandbox batch for code)."""
    flat = task.grade([p for p, texts in zip(problems, groups, strict=True) for _ in texts],
                      [text for texts in groups for text in texts])
    out, start = [], 0
    for texts in groups:
        out.append(flat[start : start + len(texts)])
        start += len(texts)
    return out


@dataclass
class Evaluation:
    pass_at_k: dict[int, float]
    pass_at_1_ci: tuple[float, float]
    greedy_accuracy: float
    correction: dict[str, float | int | None]
    pass_at_1_by_level: dict[int, float]
    correct_counts: list[int]
    correction_counts: list[list[int]]
    examples: dict[str, str]

    def to_dict(self) -> dict:
        return {
            "pass_at_k": {str(k): v for k, v in self.pass_at_k.items()},
            "pass_at_1_ci95": list(self.pass_at_1_ci),
            "greedy_accuracy": self.greedy_accuracy,
            "self_correction": self.correction,
            "pass_at_1_by_level": {str(k): v for k, v in self.pass_at_1_by_level.items()},
            "correct_counts": self.correct_counts,
            "correction_counts": self.correction_counts,
            "examples": self.examples,
        }


def evaluate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence,
    config: EvalConfig,
    name: str = "model",
    show_progress: bool = True,
    task: LabTask | None = None,
) -> Evaluation:
    model.eval()
    task = task or MathTask()
    prompts = [p.messages() for p in problems]
    n, m = config.num_samples, min(config.correction_attempts, config.num_samples)
    total = sum(num_batches(len(problems) * count, config) for count in (n, 1, m))
    with tqdm(total=total, desc=f"eval {name}", disable=not show_progress, dynamic_ncols=True) as bar:
        samples = generate(model, tokenizer, prompts, config, n, stream=0, bar=bar)
        correct = grade_groups(task, problems, samples)
        greedy = generate(model, tokenizer, prompts, config, 1, greedy=True, stream=1, bar=bar)
        greedy_correct = task.grade(problems, [g[0] for g in greedy])
        correction, per_problem, example = self_correction(model, tokenizer, problems, samples, correct, config,
                                                           bar, task)
    counts = [sum(c) for c in correct]
    per_problem_p1 = [c / n for c in counts]
    p1 = estimate(per_problem_p1, seed=config.seed)
    return Evaluation(
        pass_at_k=pass_at_k_curve(counts, n, range(1, n + 1)),
        pass_at_1_ci=(p1.ci_low, p1.ci_high),
        greedy_accuracy=sum(greedy_correct) / len(problems),
        correction=correction,
        pass_at_1_by_level=_by_level(problems, per_problem_p1),
        correct_counts=counts,
        correction_counts=per_problem,
        examples={"problem": task.text(problems[0]), "sample": samples[0][0], **example},
    )


def self_correction(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence,
    samples: list[list[str]],
    correct: list[list[bool]],
    config: EvalConfig,
    bar: tqdm | None = None,
    task: LabTask | None = None,
) -> tuple[dict[str, float | int | None], list[list[int]], dict[str, str]]:
    """Each of the first ``correction_attempts`` samples of a problem is reviewed once by the same model.

    Returns the rates, each problem's ``[right at turn 1, right at turn 2, wrong->right, right->wrong]`` counts
    (the claims' intervals resample problems) and an example of a fix.
    """
    task = task or MathTask()
    m = config.correction_attempts
    attempts = [(p, text, ok) for p, texts, oks in zip(problems, samples, correct, strict=True)
                for text, ok in zip(texts[:m], oks[:m], strict=True)]
    prompts = [build_correction_prompt(p.messages(), text, instruction=task.correction_instruction)
               for p, text, _ in attempts]
    revised = [r[0] for r in generate(model, tokenizer, prompts, config, 1, stream=2, bar=bar)]
    revised_correct = task.grade([p for p, _, _ in attempts], revised)
    pairs = [(ok, ok2) for (_, _, ok), ok2 in zip(attempts, revised_correct, strict=True)]
    fixed = next((i for i, (ok, ok2) in enumerate(pairs) if not ok and ok2), None)
    example = {} if fixed is None else {
        "fixed_problem": task.text(attempts[fixed][0]),
        "fixed_attempt": attempts[fixed][1],
        "fixed_revision": revised[fixed],
    }
    return correction_rates(pairs).to_dict(), problem_correction_counts(pairs, [len(texts[:m]) for texts in samples]), example


def problem_correction_counts(pairs: Sequence[tuple[bool, bool]], attempts_per_problem: Sequence[int]) -> list[list[int]]:
    """Per problem: right at turn 1, right at turn 2, wrong->right and right->wrong counts; ``pairs`` holds the
    problems' (turn 1, turn 2) grades one problem after the other."""
    out, start = [], 0
    for count in attempts_per_problem:
        chunk = pairs[start : start + count]
        start += count
        out.append([sum(a for a, _ in chunk), sum(b for _, b in chunk), sum(not a and b for a, b in chunk),
                    sum(a and not b for a, b in chunk)])
    return out


def _by_level(problems: Sequence, values: Sequence[float]) -> dict[int, float]:
    levels: dict[int, list[float]] = {}
    for problem, value in zip(problems, values, strict=True):
        levels.setdefault(problem.level, []).append(value)
    return {level: sum(v) / len(v) for level, v in sorted(levels.items())}
