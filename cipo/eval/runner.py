"""The evaluation loop: sample, score, append to ``samples.jsonl``, then compute the metrics.

Three protocols (``EvalConfig.mode``):

* ``standard``: ``n`` samples per problem (turn 1); pass@k, avg@k, maj@k.
* ``correction``: as ``standard``, then each turn-1 sample is handed back to the same model with the trainer's
  correction prompt (:func:`cipo.core.prompts.build_correction_prompt`) for one turn-2 sample. Adds Acc@t1,
  Acc@t2, delta and the wrong->right / right->wrong rates over the (turn 1, turn 2) pairs.
* ``fix``: the dataset provides an attempt (column ``attempt``, usually a wrong solution, as in DebugBench);
  the model gets ``n`` tries at fixing it with the same correction prompt. The provided attempts are scored too,
  so the turn-1 side of the rates is the provided attempts' accuracy.

Every sample is keyed by ``(problem id, turn, sample index)`` and seeded from that key, so an interrupted run
picks up where it stopped and only generates what is missing.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from cipo.core.prompts import (
    DEFAULT_INSTRUCTION,
    build_correction_prompt,
    is_conversational_prompt,
    truncate_attempt,
)
from cipo.eval import metrics
from cipo.eval.benchmarks import CUSTOM, Row, Task, get_spec, load_benchmark, load_table
from cipo.eval.generation import (
    Generation,
    GenerationRequest,
    Generator,
    SamplingConfig,
    load_generator,
    sample_seed,
)
from cipo.eval.report import RESULTS_FILE, markdown_report, plot_pass_at_k
from cipo.eval.store import SampleStore
from cipo.rewards.math import extract_answer
from cipo.rewards.math import normalize_answer as normalize_math_answer

Mode = Literal["standard", "correction", "fix"]
MODES: tuple[str, ...] = ("standard", "correction", "fix")
RewardFunc = Callable[..., list[float | None]]
AnswerExtractor = Callable[[str], str | None]

SAMPLES_FILE = "samples.jsonl"
TABLE_FILE = "results.md"
PLOT_FILE = "pass_at_k.png"
CONFIG_FILE = "config.json"


class EvalError(Exception):
    """A user-facing evaluation error (bad settings, mismatched resume, failing reward...)."""


@dataclass
class EvalConfig:
    """Settings of one evaluation run."""

    model: str = field(metadata={"help": "Model to evaluate: a local path or a Hugging Face Hub id."})
    benchmark: str = field(
        metadata={
            "help": "Benchmark name (gsm8k, math500, aime24, amc23, minerva_math, "
            "olympiadbench, humaneval, mbpp, debugbench) or 'custom' for any file with --data."
        }
    )
    data: str | None = field(
        default=None,
        metadata={
            "help": "Local copy of the benchmark: its file, or a folder "
            "holding its usual file name. Without it, the Hub copy."
        },
    )
    columns: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "Column mapping for 'custom' files, e.g. problem=question,answer=gold,attempt=buggy_code."
        },
    )
    task: Task | None = field(
        default=None, metadata={"help": "math or code; needed for 'custom' benchmarks."}
    )
    n: int = field(default=1, metadata={"help": "Samples per problem (turn 1)."})
    ks: list[int] = field(
        default_factory=list,
        metadata={"help": "k values of pass@k, avg@k and maj@k (default: 1, 2, 4, ... up to n)."},
    )
    mode: Mode = field(
        default="standard",
        metadata={
            "help": "standard, correction (turn-2 self-correction) or fix "
            "(fix the attempts the dataset provides)."
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N problems."})
    output_dir: str | None = field(
        default=None,
        metadata={"help": "Run folder (default runs/eval/MODEL-BENCHMARK-MODE). Rerunning into it resumes."},
    )
    reward: str | None = field(
        default=None,
        metadata={
            "help": "Scorer: a registered reward name or 'package.module:function' (default: math or code)."
        },
    )
    correct_threshold: float = field(
        default=1.0, metadata={"help": "A sample is correct when its reward >= this."}
    )
    instruction: str | None = field(
        default=None,
        metadata={"help": "Answer-format instruction appended to problems (default: the benchmark's)."},
    )
    correction_instruction: str = field(
        default=DEFAULT_INSTRUCTION,
        metadata={"help": "User turn that asks for the review (default: the trainer's)."},
    )
    max_attempt_tokens: int | None = field(
        default=None,
        metadata={"help": "Keep only the last N tokens of an attempt inside the correction prompt."},
    )
    sampling: SamplingConfig = field(
        default_factory=SamplingConfig, metadata={"help": "Sampling parameters."}
    )
    backend: str = field(default="auto", metadata={"help": "auto, transformers or vllm."})
    device: str = field(
        default="auto", metadata={"help": "transformers backend device: auto, cpu, cuda, cuda:1..."}
    )
    dtype: str = field(
        default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16 or float16."}
    )
    batch_size: int | None = field(
        default=None,
        metadata={"help": "Samples per generate call (default: the backend's, 16 for transformers)."},
    )
    bootstrap_resamples: int = field(
        default=1000, metadata={"help": "Bootstrap resamples for confidence intervals."}
    )
    confidence: float = field(default=0.95, metadata={"help": "Confidence level of the intervals."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise EvalError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.n < 1:
            raise EvalError(f"n (samples per problem) must be >= 1, got {self.n}")
        if self.limit is not None and self.limit < 1:
            raise EvalError(f"limit must be >= 1, got {self.limit}")
        self.ks = sorted({1, *(self.ks or default_ks(self.n))})
        too_big = [k for k in self.ks if k > self.n or k < 1]
        if too_big:
            raise EvalError(f"k values {too_big} need 1 <= k <= n = {self.n}: sample more (--n) or drop them")
        if self.benchmark.lower() == CUSTOM and (self.data is None or self.task is None):
            raise EvalError("a 'custom' benchmark needs --data FILE and --task math|code")

    def identity(self) -> dict[str, Any]:
        """The settings that samples depend on: a run folder only resumes with the same ones."""
        return {
            "model": self.model,
            "benchmark": self.benchmark.lower(),
            "columns": self.columns,
            "mode": self.mode,
            "reward": self.reward,
            "correct_threshold": self.correct_threshold,
            "instruction": self.instruction,
            "correction_instruction": self.correction_instruction,
            "max_attempt_tokens": self.max_attempt_tokens,
            "sampling": self.sampling.to_dict(),
        }

    def default_output_dir(self) -> Path:
        model_name = Path(self.model.rstrip("/")).name.replace(":", "-") or "model"
        return Path("runs") / "eval" / f"{model_name}-{self.benchmark.lower()}-{self.mode}"


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return sorted({*ks, n})


def default_answer_extractor(text: str) -> str | None:
    """The answer used for majority votes: the math reward's extraction (last ``\\boxed{}``, else an
    "answer is" phrase), normalized the way its fast path compares answers."""
    answer = extract_answer(text)
    return normalize_math_answer(answer) if answer is not None else None


@dataclass
class _WorkItem:
    row: Row
    turn: int
    sample: int
    attempt: str | None = None  # turn 2: the text to correct

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.row["id"], self.turn, self.sample)


@dataclass
class _Throughput:
    samples: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "generated_samples": self.samples,
            "generated_tokens": self.tokens,
            "generation_seconds": round(self.seconds, 3),
            "samples_per_second": round(self.samples / self.seconds, 3) if self.seconds else None,
            "tokens_per_second": round(self.tokens / self.seconds, 1) if self.seconds else None,
        }


class Evaluation:
    """One run: ``Evaluation(config).run()`` returns the results dict and writes every output file.

    ``generator``, ``reward_fn``, ``rows`` and ``answer_extractor`` replace the defaults built from the config
    (tests and the lab use this to plug in their own pieces).
    """

    def __init__(
        self,
        config: EvalConfig,
        *,
        generator: Generator | None = None,
        reward_fn: RewardFunc | None = None,
        rows: Sequence[Row] | None = None,
        answer_extractor: AnswerExtractor | None = None,
    ) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir) if config.output_dir else config.default_output_dir()
        self.benchmark_name, self.task = _benchmark_and_task(config)
        loaded = rows if rows is not None else self._load_rows()
        self.load_notes: dict[str, Any] = dict(getattr(loaded, "notes", {}))  # see LoadedRows
        self.rows = list(loaded)
        self._rows_by_id = {row["id"]: row for row in self.rows}
        self.reward_fn = reward_fn or _resolve_reward(config.reward or self.task)
        self.answer_extractor = answer_extractor or (
            default_answer_extractor if self.task == "math" else None
        )
        self._generator = generator
        self.throughput = _Throughput()
        if config.mode == "fix":
            missing = [row["id"] for row in self.rows if not isinstance(row.get("attempt"), str)]
            if missing:
                raise EvalError(
                    f"mode 'fix' needs an 'attempt' for every problem; missing for {missing[:5]} "
                    "(map the column with --columns attempt=COLUMN)"
                )

    # -- setup ---------------------------------------------------------------------------------------------------

    def _load_rows(self) -> list[Row]:
        config = self.config
        if self.benchmark_name == CUSTOM:
            return load_table(
                config.data,
                task=self.task,
                columns=config.columns,
                limit=config.limit,
                instruction=config.instruction,
            )
        return load_benchmark(
            self.benchmark_name, config.data, limit=config.limit, instruction=config.instruction
        )

    @property
    def generator(self) -> Generator:
        """Loaded on first use, so that a finished run re-reports without loading the model."""
        if self._generator is None:
            config = self.config
            self._generator = load_generator(
                config.model,
                config.sampling,
                backend=config.backend,
                device=config.device,
                dtype=config.dtype,
            )
        return self._generator

    def _check_run_folder(self) -> None:
        path = self.output_dir / CONFIG_FILE
        identity = self.config.identity()
        if path.exists():
            previous = json.loads(path.read_text(encoding="utf-8")).get("identity", {})
            changed = {
                key: (previous.get(key), value)
                for key, value in identity.items()
                if previous.get(key) != value
            }
            if changed:
                details = "; ".join(f"{key}: was {old!r}, now {new!r}" for key, (old, new) in changed.items())
                raise EvalError(
                    f"{self.output_dir} holds a run with other settings ({details}). "
                    "Use another --output, or the same settings to resume it."
                )
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        path.write_text(
            json.dumps({"identity": identity, "created": created}, indent=2) + "\n", encoding="utf-8"
        )

    # -- main loop -----------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self._check_run_folder()
        store = SampleStore(self.output_dir / SAMPLES_FILE)
        turns = [1, 2] if self.config.mode == "correction" else [2] if self.config.mode == "fix" else [1]
        total = len(self.rows) * self.config.n * len(turns)
        done = sum(1 for turn in turns for item in self._items(turn) if item.key in store)
        if done < total:
            _ = self.generator  # load the model before the progress bar starts, so that its ETA is meaningful
        with tqdm(
            total=total,
            initial=done,
            unit="sample",
            desc=f"eval {self.benchmark_name}",
            disable=not self.config.progress,
            dynamic_ncols=True,
        ) as progress:
            for turn in turns:
                self._run_turn(turn, store, progress)
        results = self._results(store)
        self._write_outputs(results)
        return results

    def _items(self, turn: int) -> Iterator[_WorkItem]:
        for row in self.rows:
            for sample in range(self.config.n):
                yield _WorkItem(row, turn, sample)

    def _attempt(self, row: Row, sample: int, store: SampleStore) -> str:
        if self.config.mode == "fix":
            return row["attempt"]
        key = (row["id"], 1, sample)
        if key not in store:
            raise EvalError(f"turn-1 sample {sample} of {row['id']} is missing from {store.path}")
        return store.completion(key)

    def _run_turn(self, turn: int, store: SampleStore, progress: tqdm) -> None:
        items = list(self._items(turn))
        unscored = [
            store.full_record(item.key)
            for item in items
            if item.key in store and store.get(item.key).get("correct") is None
        ]
        if unscored:
            self._score_and_save(unscored, store)
        pending = [item for item in items if item.key not in store]
        if not pending:
            return
        for batch in _chunks(iter(pending), self.config.batch_size or self.generator.default_batch_size):
            for item in batch:
                if turn == 2:
                    item.attempt = self._attempt(item.row, item.sample, store)
            records = self._generate(batch)
            self._score_and_save(records, store)
            progress.update(len(batch))

    def _generate(self, batch: list[_WorkItem]) -> list[dict[str, Any]]:
        requests = [GenerationRequest(self._prompt(item), self._seed(item)) for item in batch]
        start = time.perf_counter()
        generations = self.generator.generate(requests)
        self.throughput.seconds += time.perf_counter() - start
        if len(generations) != len(requests):
            raise EvalError(
                f"the {self.generator.backend} backend returned {len(generations)} generations "
                f"for {len(requests)} requests"
            )
        self.throughput.samples += len(generations)
        self.throughput.tokens += sum(g.num_tokens for g in generations)
        return [
            _record(item, request.seed, generation)
            for item, request, generation in zip(batch, requests, generations, strict=True)
        ]

    def _prompt(self, item: _WorkItem) -> Any:
        if item.turn == 1:
            return item.row["prompt"]
        attempt = item.attempt or ""
        if self.config.max_attempt_tokens:
            attempt = truncate_attempt(
                attempt, getattr(self.generator, "tokenizer", None), self.config.max_attempt_tokens
            )
        return build_correction_prompt(
            item.row["prompt"], attempt, instruction=self.config.correction_instruction
        )

    def _seed(self, item: _WorkItem) -> int:
        return sample_seed(self.config.sampling.seed, item.row["id"], item.turn, item.sample)

    # -- scoring -------------------------------------------------------------------------------------------------

    def _score_and_save(self, records: list[dict[str, Any]], store: SampleStore) -> None:
        rows = [self._rows_by_id[record["id"]] for record in records]
        try:
            rewards = self._rewards(rows, [record["completion"] for record in records])
        except BaseException as error:
            # Keep the generations (also on Ctrl-C): the next run only re-scores them.
            store.append({**record, "reward": None, "correct": None} for record in records)
            if not isinstance(error, Exception):
                raise
            raise EvalError(
                f"the reward function failed on a batch of {len(records)} samples "
                f"(first: {records[0]['id']}, turn {records[0]['turn']}): {error!r}. "
                f"The generations are saved in {store.path}; rerun to score them."
            ) from error
        for record, reward in zip(records, rewards, strict=True):
            record["reward"] = reward
            record["correct"] = reward is not None and reward >= self.config.correct_threshold
            if self.answer_extractor is not None:
                record["extracted"] = self.answer_extractor(record["completion"])
        store.append(records)

    def _rewards(self, rows: list[Row], texts: list[str]) -> list[float | None]:
        """Call the reward function as TRL does: completions plus one list per dataset column."""
        completions = [
            [{"role": "assistant", "content": text}] if is_conversational_prompt(row["prompt"]) else text
            for row, text in zip(rows, texts, strict=True)
        ]
        columns = {key: [row.get(key) for row in rows] for key in rows[0] if key != "prompt"}
        rewards = self.reward_fn(completions, prompts=[row["prompt"] for row in rows], **columns)
        if len(rewards) != len(completions):
            raise EvalError(
                f"reward function returned {len(rewards)} rewards for {len(completions)} completions"
            )
        return [None if reward is None else float(reward) for reward in rewards]

    # -- results -------------------------------------------------------------------------------------------------

    def _correctness(self, store: SampleStore, turn: int) -> tuple[list[list[bool]], list[list[str | None]]]:
        correct, answers = [], []
        for row in self.rows:
            records = [store.get((row["id"], turn, sample)) for sample in range(self.config.n)]
            if any(record is None or record.get("correct") is None for record in records):
                raise EvalError(f"{row['id']}: turn-{turn} samples are missing or unscored in {store.path}")
            correct.append([bool(record["correct"]) for record in records])
            answers.append([record.get("extracted") for record in records])
        return correct, answers

    def _results(self, store: SampleStore) -> dict[str, Any]:
        config = self.config
        results: dict[str, Any] = {
            "model": config.model,
            "benchmark": self.benchmark_name,
            "data": config.data,
            "task": self.task,
            "mode": config.mode,
            "num_problems": len(self.rows),
            "n": config.n,
            "ks": config.ks,
            "sampling": config.sampling.to_dict(),
            "reward": config.reward or self.task,
            "correct_threshold": config.correct_threshold,
            "confidence": config.confidence,
            "bootstrap_resamples": config.bootstrap_resamples,
        }
        first = self._correctness(store, 1)[0] if config.mode != "fix" else self._provided_correct()
        if config.mode != "fix":
            results["turn1"] = self._turn_metrics(*self._correctness(store, 1))
        if config.mode in ("correction", "fix"):
            second, answers = self._correctness(store, 2)
            results["turn2"] = self._turn_metrics(second, answers)
            results["correction"] = self._correction_metrics(first, second)
        if self.load_notes:
            results["benchmark_notes"] = self.load_notes
        groups = self._group_metrics(store, first if config.mode == "fix" else None)
        if groups:
            results["groups"] = groups
        results["throughput_this_run"] = self.throughput.to_dict()
        results["backend"] = self._generator.backend if self._generator is not None else None
        results["versions"] = _package_versions()
        results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        return results

    def _estimate(self, values: Sequence[float]) -> dict[str, float]:
        return metrics.estimate(
            values,
            n_resamples=self.config.bootstrap_resamples,
            confidence=self.config.confidence,
            seed=self.config.sampling.seed,
        ).to_dict()

    def _turn_metrics(self, correct: list[list[bool]], answers: list[list[str | None]]) -> dict[str, Any]:
        counts = [sum(samples) for samples in correct]
        block: dict[str, Any] = {
            "pass@k": {
                str(k): self._estimate(metrics.pass_at_k_per_problem(counts, self.config.n, k))
                for k in self.config.ks
            },
            "avg@k": {
                str(k): self._estimate(metrics.avg_at_k_per_problem(correct, k)) for k in self.config.ks
            },
        }
        if self.task == "math":
            block["maj@k"] = {
                str(k): self._estimate(metrics.maj_at_k_per_problem(answers, correct, k))
                for k in self.config.ks
            }
        return block

    def _provided_correct(self) -> list[list[bool]]:
        """Fix mode: score each provided attempt once and pair it with every fix of it."""
        rewards = self._rewards(self.rows, [row["attempt"] for row in self.rows])
        return [
            [reward is not None and reward >= self.config.correct_threshold] * self.config.n
            for reward in rewards
        ]

    def _group_metrics(
        self, store: SampleStore, provided_correct: list[list[bool]] | None
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """Accuracy of the last turn (and of the provided attempts, in fix mode) per value of each field the
        benchmark reports by (DebugBench: bug type and level); each problem weighs the same."""
        fields = get_spec(self.benchmark_name).group_by if self.benchmark_name != CUSTOM else ()
        if not fields:
            return {}
        turn = 1 if self.config.mode == "standard" else 2
        accuracy = [sum(samples) / len(samples) for samples in self._correctness(store, turn)[0]]
        provided = [samples[0] for samples in provided_correct] if provided_correct is not None else None
        groups: dict[str, dict[str, dict[str, Any]]] = {}
        for name in fields:
            members: dict[str, list[int]] = {}
            for index, row in enumerate(self.rows):
                members.setdefault(str(row.get("meta", {}).get(name)), []).append(index)
            groups[name] = {
                value: {
                    "problems": len(indices),
                    "accuracy": sum(accuracy[i] for i in indices) / len(indices),
                    **(
                        {"provided_accuracy": sum(provided[i] for i in indices) / len(indices)}
                        if provided is not None
                        else {}
                    ),
                }
                for value, indices in sorted(members.items())
            }
        return groups

    def _correction_metrics(self, first: list[list[bool]], second: list[list[bool]]) -> dict[str, Any]:
        pairs = [
            (a, b)
            for row_first, row_second in zip(first, second, strict=True)
            for a, b in zip(row_first, row_second, strict=True)
        ]
        rates = metrics.correction_rates(pairs).to_dict()
        per_problem_t1 = [sum(samples) / len(samples) for samples in first]
        per_problem_t2 = [sum(samples) / len(samples) for samples in second]
        rates["acc_t1_ci"] = self._estimate(per_problem_t1)
        rates["acc_t2_ci"] = self._estimate(per_problem_t2)
        rates["delta_ci"] = self._estimate(
            [b - a for a, b in zip(per_problem_t1, per_problem_t2, strict=True)]
        )
        return rates

    def _write_outputs(self, results: dict[str, Any]) -> None:
        (self.output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        (self.output_dir / TABLE_FILE).write_text(markdown_report(results), encoding="utf-8")
        plot_pass_at_k([(self.output_dir.name, results)], self.output_dir / PLOT_FILE)


def _record(item: _WorkItem, seed: int, generation: Generation) -> dict[str, Any]:
    return {
        "id": item.row["id"],
        "turn": item.turn,
        "sample": item.sample,
        "seed": seed,
        "completion": generation.text,
        "num_tokens": generation.num_tokens,
        "finish_reason": generation.finish_reason,
    }


def _chunks(items: Iterator[_WorkItem], size: int) -> Iterator[list[_WorkItem]]:
    batch: list[_WorkItem] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _package_versions() -> dict[str, str | None]:
    """Versions that can change scores, recorded so that runs compared later are known to be comparable."""
    versions: dict[str, str | None] = {}
    for package in ("cipo", "torch", "transformers", "vllm", "math-verify"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _benchmark_and_task(config: EvalConfig) -> tuple[str, Task]:
    """The benchmark's canonical name and its task (math or code)."""
    if config.benchmark.lower() == CUSTOM:
        return CUSTOM, config.task
    try:
        spec = get_spec(config.benchmark)
    except KeyError as error:
        raise EvalError(error.args[0]) from None
    if config.task is not None and config.task != spec.task:
        raise EvalError(
            f"benchmark {spec.name} is a {spec.task} benchmark; --task {config.task} contradicts it"
        )
    return spec.name, spec.task


def _resolve_reward(name: str) -> RewardFunc:
    from cipo.rewards import get_reward

    try:
        return get_reward(name)
    except (KeyError, ImportError, AttributeError, ValueError) as error:
        raise EvalError(f"cannot load the reward function {name!r}: {error}") from error


def run_eval(config: EvalConfig, **overrides: Any) -> dict[str, Any]:
    """Shortcut for ``Evaluation(config, **overrides).run()``."""
    return Evaluation(config, **overrides).run()
