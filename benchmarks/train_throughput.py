"""What CIPO costs over GRPO: wall time per step by section, tokens/s and peak memory, same model, same data.

    python benchmarks/train_throughput.py                     # tiny local Llama (hidden 128, 4 layers), CPU ok
    python benchmarks/train_throughput.py --model PATH --dataset data.jsonl --steps 10
    python benchmarks/train_throughput.py --correction_micro_batch 4 --set use_vllm=true --set vllm_mode=colocate

Both runs use ``CIPOTrainer`` in this process, first with ``use_correction=False`` (plain GRPO), then with
corrections, ``--warmup`` + ``--steps`` optimizer steps each; figures are medians over the measured steps. The
trainer's methods are wrapped on the instance (``GRPOTrainer._compute_loss`` for this trainer only, to time the
two loss calls of ``CIPOTrainer._compute_loss`` apart); the time rows partition the step. CIPO machinery is
CIPO's ``_generate_and_score_completions`` from ``_select_anchors`` on, minus the correction tokens' generation
and log-probs (selection, prompt building, the corrections' rewards, the parent's bookkeeping on them,
advantages, stats and replay), plus CIPO's ``_prepare_inputs`` beyond cutting the originals (stratified
chunking) and ``CIPOTrainer._compute_loss`` outside the two loss calls. The two sets are trained apart at their
own padding: a forward pre-hook counts the positions the training forwards compute (``input_ids.numel()`` under
grad), checked against the trained rows x (prompt + completion width) of the batch each was generated in.

``machinery_overhead`` = (GRPO step + machinery) / GRPO step, budget 1.05; ``step_time_ratio`` = CIPO step /
GRPO step. One torch thread on CPU by default (``--threads``: two made generation 5-10x slower on a shared
2-core box). Peak memory: RSS high-water (``VmHWM``) reset per run via ``/proc/self/clear_refs`` where allowed
(compare "over start": the second run inherits allocator pools); on CUDA ``max_memory_allocated``. The last
line printed is one JSON object for scripts. docs/cost.md explains every row.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BUDGET = 1.05


# ----------------------------------------------------------------------------------------------- timing
class SectionClock:
    """Accumulates named section times and counters for the current optimizer step, one record per step."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.in_correction = False
        self.generated_corrections: Any = None  # the corrections batch the last generation returned
        self.corrections_in_loss: Any = None  # the corrections batch of the micro-batch being trained
        self.widths: dict[str, int] = {}  # per-row positions of the originals ("") and corrections, as generated
        self.sections: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()  # counters over the whole run, warm-up included
        self.tail_start: float | None = None
        self.step_start = 0.0
        self.records: list[dict[str, float]] = []

    def now(self) -> float:
        if self.cuda:  # kernels run asynchronously: wait for them before reading the clock
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def begin_step(self) -> None:
        self.sections.clear()
        self.counts.clear()
        self.tail_start, self.step_start = None, self.now()

    def end_step(self) -> None:
        step = self.now() - self.step_start
        self.totals.update(self.counts)
        self.records.append(derive_step({"step": step, **self.sections, **self.counts}))

    def timed(self, func: Callable, name: str, correction_name: str | None = None) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            section = correction_name if self.in_correction and correction_name else name
            start = self.now()
            try:
                return func(*args, **kwargs)
            finally:
                self.sections[section] += self.now() - start

        return wrapper


def width(batch: dict[str, Any]) -> int:
    """Positions per row of a forward over the batch at its own padding: prompt + completion width."""
    return batch["prompt_ids"].size(1) + batch["completion_ids"].size(1)


@contextlib.contextmanager
def instrument(trainer: Any, clock: SectionClock) -> Iterator[None]:
    """Wrap the trainer's step pieces on the instance; for the block, also the module's chunking and the
    parent's loss (for this trainer only) and a forward pre-hook on the model."""
    from trl import GRPOTrainer

    import cipo.trainer as trainer_module

    _wrap_generation_and_scoring(trainer, clock)
    _wrap_cipo_pieces(trainer, clock)
    parent_loss, chunks = GRPOTrainer.__dict__["_compute_loss"], trainer_module._shuffled_chunks
    GRPOTrainer._compute_loss = _wrap_training(trainer, clock, parent_loss)
    trainer_module._shuffled_chunks = _timed_chunks(chunks, clock)
    hook = trainer.model.register_forward_pre_hook(_position_counter(clock), with_kwargs=True)
    try:
        yield
    finally:
        GRPOTrainer._compute_loss, trainer_module._shuffled_chunks = parent_loss, chunks
        hook.remove()


def _wrap_generation_and_scoring(trainer: Any, clock: SectionClock) -> None:
    import torch

    from cipo.trainer import CORRECTIONS

    generate = trainer._generate

    def counted_generate(prompts: list) -> Any:
        result = generate(prompts)
        prefix = "correction_" if clock.in_correction else ""
        clock.counts[f"{prefix}generate_calls"] += 1
        clock.counts[f"{prefix}generated_tokens"] += sum(len(ids) for ids in result[1])  # completion ids
        return result

    logps = trainer._get_per_token_logps_and_entropies
    timed_logps = clock.timed(logps, "logprobs", "correction_logprobs")

    def scoring_logps(*args: Any, **kwargs: Any) -> Any:
        # With grad enabled it is the loss forward (optimization), not scoring.
        return logps(*args, **kwargs) if torch.is_grad_enabled() else timed_logps(*args, **kwargs)

    generate_and_score = trainer._generate_and_score_completions

    def timed_generate_and_score(inputs: list) -> Any:
        start = clock.now()
        batch = generate_and_score(inputs)
        end = clock.now()
        clock.sections["generate_and_score"] += end - start
        if clock.tail_start is not None:
            clock.sections["cipo_tail"] += end - clock.tail_start
            clock.tail_start = None
        corrections = clock.generated_corrections = batch.get(CORRECTIONS)
        clock.widths = {"": width(batch), "correction_": width(corrections) if corrections else 0}
        return batch

    trainer._generate = clock.timed(counted_generate, "generation", "correction_generation")
    trainer._calculate_rewards = clock.timed(trainer._calculate_rewards, "reward", "extra_scoring")
    trainer._get_per_token_logps_and_entropies = scoring_logps
    trainer._generate_and_score_completions = timed_generate_and_score
    trainer._prepare_inputs = clock.timed(trainer._prepare_inputs, "prepare_inputs")


def _wrap_cipo_pieces(trainer: Any, clock: SectionClock) -> None:
    select = clock.timed(trainer._select_anchors, "selection")

    def marked_select(*args: Any, **kwargs: Any) -> Any:
        clock.tail_start = clock.now()  # CIPO's part of the step starts here
        return select(*args, **kwargs)

    correction_generation = trainer._correction_generation

    @contextlib.contextmanager
    def timed_correction_generation() -> Iterator[None]:
        start = clock.now()
        clock.in_correction = True
        try:
            with correction_generation():
                yield
        finally:
            clock.in_correction = False
            clock.sections["correction_phase"] += clock.now() - start

    trainer._select_anchors = marked_select
    trainer._correction_inputs = clock.timed(trainer._correction_inputs, "prompt_building")
    trainer._correction_advantages = clock.timed(trainer._correction_advantages, "advantages")
    trainer._correction_generation = timed_correction_generation


def _wrap_training(trainer: Any, clock: SectionClock, parent_loss: Callable) -> Callable:
    """Time CIPO's ``_compute_loss`` on the instance; returns the parent's loss, timed per set, for the class."""
    from cipo.trainer import CORRECTIONS

    cipo_loss = clock.timed(trainer._compute_loss, "loss_total")

    def marked_cipo_loss(model: Any, inputs: dict) -> Any:
        clock.corrections_in_loss = inputs.get(CORRECTIONS)  # the object CIPO passes to the parent's loss
        return cipo_loss(model, inputs)

    def measured_parent_loss(self: Any, model: Any, inputs: dict) -> Any:
        if self is not trainer:
            return parent_loss(self, model, inputs)
        prefix = "correction_" if inputs is clock.corrections_in_loss else ""
        mask = inputs["completion_mask"]
        if inputs.get("tool_mask") is not None:
            mask = mask * inputs["tool_mask"]
        clock.counts[f"{prefix}trained_tokens"] += int(mask.sum())
        clock.counts["batch_positions"] += inputs["prompt_ids"].size(0) * clock.widths[prefix]
        start = clock.now()
        loss = parent_loss(self, model, inputs)
        clock.sections[f"{prefix}loss_forward"] += clock.now() - start
        return loss

    trainer._compute_loss = marked_cipo_loss
    return measured_parent_loss


def _timed_chunks(chunks: Callable, clock: SectionClock) -> Callable:
    """Time CIPO's ``_shuffled_chunks`` on the originals (GRPO cuts its batch the same way) and count its calls."""

    def timed(batch: dict, count: int) -> list[dict]:
        clock.counts["cipo_chunk_calls"] += 1
        start = clock.now()
        parts = chunks(batch, count)
        if batch is not clock.generated_corrections:
            clock.sections["originals_chunking"] += clock.now() - start
        return parts

    return timed


def _position_counter(clock: SectionClock) -> Callable:
    import torch

    def count(_module: Any, args: tuple, kwargs: dict) -> None:
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if torch.is_grad_enabled() and input_ids is not None:  # the training forward, not generation
            clock.counts["trained_positions"] += input_ids.numel()

    return count


# Raw sections and counters reported as they are (seconds, or counts per step).
AS_MEASURED = (
    "generation", "correction_generation", "reward", "logprobs", "correction_logprobs", "loss_forward",
    "correction_loss_forward", "selection", "prompt_building", "extra_scoring", "advantages", "generate_calls",
    "correction_generate_calls", "correction_generated_tokens", "correction_trained_tokens", "trained_positions",
    "batch_positions",
)  # fmt: skip


def derive_step(raw: dict[str, float]) -> dict[str, float]:
    """Per-step figures from raw section times (seconds) and counters; the time rows partition the step."""
    get = raw.get
    figures = {"step": raw["step"], **{key: get(key, 0.0) for key in AS_MEASURED}}
    buffering = get("prepare_inputs", 0.0) - get("generate_and_score", 0.0)  # shuffle, cut into micro-batches
    # In CIPO's own _prepare_inputs, everything beyond cutting the originals is CIPO's; the parent's is GRPO's.
    chunking = max(buffering - get("originals_chunking", 0.0), 0.0) if get("cipo_chunk_calls") else 0.0
    if get("correction_loss_forward"):
        loss_bookkeeping = max(get("loss_total", 0.0) - get("loss_forward") - get("correction_loss_forward"), 0.0)
    else:  # no corrections in the micro-batch: CIPO's _compute_loss only passes it to the parent
        loss_bookkeeping, figures["loss_forward"] = 0.0, get("loss_total", 0.0)
    figures["backward_and_step"] = max(raw["step"] - get("prepare_inputs", 0.0) - get("loss_total", 0.0), 0.0)
    figures["optimization"] = figures["loss_forward"] + figures["correction_loss_forward"] + figures["backward_and_step"]
    correction_tokens = get("correction_generation", 0.0) + get("correction_logprobs", 0.0)
    bookkeeping = get("correction_phase", 0.0) - correction_tokens - get("extra_scoring", 0.0)
    figures["correction_bookkeeping"] = max(bookkeeping, 0.0)
    named = ("selection", "prompt_building", "extra_scoring", "correction_bookkeeping", "advantages")
    tail = max(get("cipo_tail", 0.0) - correction_tokens, 0.0)
    figures["other_machinery"] = max(tail - sum(figures[key] for key in named), 0.0)
    figures["stratified_chunking"], figures["loss_bookkeeping"] = chunking, loss_bookkeeping
    figures["machinery"] = sum(figures[key] for key in (*named, "other_machinery")) + chunking + loss_bookkeeping
    originals = get("generation", 0.0) + get("reward", 0.0) + get("logprobs", 0.0)
    parent_rest = get("generate_and_score", 0.0) - get("cipo_tail", 0.0) - originals
    figures["grpo_other"] = max(parent_rest + buffering - chunking, 0.0)
    figures["generated_tokens"] = get("generated_tokens", 0) + get("correction_generated_tokens", 0)
    figures["trained_tokens"] = get("trained_tokens", 0) + get("correction_trained_tokens", 0)
    return figures


def positions_check(totals: Counter) -> tuple[bool, str]:
    """Whether the training forwards computed exactly the positions of the trained rows at their sets' widths."""
    trained, expected = totals["trained_positions"], totals["batch_positions"]
    return trained == expected, (
        f"training forwards computed {trained} positions over the run; the trained rows at the widths their "
        f"batch (originals or corrections) was generated with hold {expected}: "
        f"{'match' if trained == expected else 'MISMATCH'}"
    )


# ----------------------------------------------------------------------------------------------- memory
def _proc_status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def reset_peak_memory(cuda: bool) -> bool:
    """Reset the CPU RSS high-water mark (and CUDA peak); True when the RSS reset worked."""
    gc.collect()
    if cuda:
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):
        return Path("/proc/self/clear_refs").write_text("5") > 0
    return False


def peak_memory(cuda: bool) -> dict[str, float | None]:
    import resource

    import torch

    hwm_kib = _proc_status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rss_peak_mib": hwm_kib / 1024, "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}


# ----------------------------------------------------------------------------------------------- runs
def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    import yaml

    if bad := [pair for pair in pairs if "=" not in pair]:
        raise SystemExit(f"--set expects key=value, got {bad[0]!r}")
    return {key: yaml.safe_load(value) for key, _, value in (pair.partition("=") for pair in pairs)}


def make_config(args: argparse.Namespace, output_dir: str, use_correction: bool, cuda: bool) -> Any:
    import torch

    from cipo.config import CIPOConfig

    bf16 = cuda and torch.cuda.is_bf16_supported()
    names = ("correction_num_generations", "correction_anchor_fraction", "correction_micro_batch", "num_generations")
    names += ("max_completion_length", "learning_rate", "seed")
    settings = {name: getattr(args, name) for name in names}
    settings.update(
        output_dir=output_dir,
        use_correction=use_correction,
        per_device_train_batch_size=args.batch_size,
        max_steps=args.warmup + args.steps,
        logging_steps=args.warmup + args.steps,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=bf16,  # TRL's default is bf16=True, which on CPU means slow bf16 autocast
        model_init_kwargs={"dtype": "bfloat16"} if bf16 else None,
    )
    settings.update(parse_overrides(args.set))
    return CIPOConfig(**settings)


def run_once(args: argparse.Namespace, model: str, dataset: Any, use_correction: bool, cuda: bool) -> dict:
    import torch
    from transformers import AutoTokenizer, PrinterCallback, ProgressCallback, TrainerCallback

    from cipo.rewards import get_reward
    from cipo.trainer import CIPOTrainer

    clock = SectionClock(cuda)

    class StepClock(TrainerCallback):
        def on_step_begin(self, *_: Any, **__: Any) -> None:
            clock.begin_step()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            clock.end_step()

    with tempfile.TemporaryDirectory(prefix="cipo-bench-") as output_dir:
        torch.manual_seed(args.seed)
        trainer = CIPOTrainer(
            model=model,
            reward_funcs=[get_reward(name) for name in args.reward_funcs],
            args=make_config(args, output_dir, use_correction, cuda),
            train_dataset=dataset,
            processing_class=AutoTokenizer.from_pretrained(model),
            callbacks=[StepClock()],
        )
        for printer in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(printer)
        rss_reset = reset_peak_memory(cuda)
        rss_start = (_proc_status_kib("VmRSS") or 0) / 1024
        with instrument(trainer, clock):
            trainer.train()
        memory = peak_memory(cuda)
        del trainer
    gc.collect()
    return {
        "steps": clock.records[args.warmup :],
        "positions": positions_check(clock.totals),
        "memory": {**memory, "rss_start_mib": rss_start, "rss_reset": rss_reset},
    }


# ----------------------------------------------------------------------------------------------- report
ROWS = (
    ("step", "step (wall)", "s"),
    ("generation", "  generation", "s"),
    ("correction_generation", "  correction generation", "s"),
    ("reward", "  reward", "s"),
    ("logprobs", "  old/ref log-probs (no grad)", "s"),
    ("correction_logprobs", "  correction log-probs (no grad)", "s"),
    ("optimization", "  optimization", "s"),
    ("loss_forward", "    loss forward, originals", "s"),
    ("correction_loss_forward", "    loss forward, corrections", "s"),
    ("backward_and_step", "    backward + optimizer (joint)", "s"),
    ("grpo_other", "  GRPO bookkeeping", "s"),
    ("machinery", "  CIPO machinery", "s"),
    ("selection", "    selection", "s"),
    ("prompt_building", "    prompt building", "s"),
    ("extra_scoring", "    extra scoring (rewards)", "s"),
    ("correction_bookkeeping", "    correction bookkeeping", "s"),
    ("advantages", "    advantages", "s"),
    ("other_machinery", "    other (stats, replay)", "s"),
    ("stratified_chunking", "    stratified chunking", "s"),
    ("loss_bookkeeping", "    loss bookkeeping", "s"),
    ("generate_calls", "_generate calls / step", "n"),
    ("correction_generate_calls", "  of them for corrections", "n"),
    ("generated_tokens", "generated tokens / step", "n"),
    ("correction_generated_tokens", "  of them corrections", "n"),
    ("gen_tok_s", "generated tokens / s", "r"),
    ("trained_tokens", "trained (loss) tokens / step", "n"),
    ("correction_trained_tokens", "  of them corrections", "n"),
    ("train_tok_s", "trained tokens / s", "r"),
    ("trained_positions", "training forward positions / step", "n"),
    ("batch_positions", "  trained rows at own widths", "n"),
    ("rss_peak_mib", "peak RSS (MiB)", "m"),
    ("rss_over_start_mib", "  over start of run (MiB)", "m"),
    ("gpu_peak_mib", "peak GPU allocated (MiB)", "m"),
)


def summarize(run: dict) -> dict[str, float | None]:
    steps = run["steps"]
    figures = {key: statistics.median(record[key] for record in steps) for key in steps[0]}
    memory = run["memory"]
    return {
        **figures,
        "gen_tok_s": figures["generated_tokens"] / figures["step"],
        "train_tok_s": figures["trained_tokens"] / figures["step"],
        "rss_peak_mib": memory["rss_peak_mib"],
        "rss_over_start_mib": memory["rss_peak_mib"] - memory["rss_start_mib"],
        "gpu_peak_mib": memory["gpu_peak_mib"],
    }


def _cell(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if kind == "s" else f"{value:g}" if kind == "n" else f"{value:,.0f}"


def _ratio(cipo: float | None, grpo: float | None) -> str:
    if cipo is None or grpo is None or grpo == cipo == 0:
        return "-"
    return "new" if grpo == 0 else f"{cipo / grpo:.3f}"


def overheads(grpo: dict, cipo: dict) -> dict[str, float]:
    return {"direct": 1 + cipo["machinery"] / grpo["step"], "step_ratio": cipo["step"] / grpo["step"]}


def print_report(header: str, grpo: dict, cipo: dict, notes: list[str]) -> dict[str, float]:
    print(header)
    print(f"{'median per step':34} {'GRPO':>12} {'CIPO':>12} {'CIPO/GRPO':>10}")
    for key, label, kind in ROWS:
        print(f"{label:34} {_cell(grpo[key], kind):>12} {_cell(cipo[key], kind):>12} {_ratio(cipo[key], grpo[key]):>10}")
    result = overheads(grpo, cipo)
    print(f"machinery overhead: (GRPO step + machinery) / GRPO step = {result['direct']:.3f} (budget {BUDGET})")
    print(f"step time ratio CIPO/GRPO = {result['step_ratio']:.3f}")
    for note in notes:
        print(f"note: {note}")
    return result


def device_name(cuda: bool) -> str:
    import platform

    import torch

    if cuda:
        return f"cuda: {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    return f"cpu: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


# ----------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="local path or hub id; default: a tiny local Llama built in a temp dir")
    parser.add_argument("--dataset", default="builtin:arithmetic", help="as cipo train's --dataset_name")
    parser.add_argument("--prompt_column", default="prompt")
    parser.add_argument("--answer_column", default="answer", help="'none' for datasets without one")
    parser.add_argument("--reward_funcs", nargs="+", default=["math"])
    for name, default, help_text in (
        ("hidden_size", 128, "tiny model only"), ("layers", 4, "tiny model only"),
        ("steps", 8, "measured steps per run"), ("warmup", 1, "steps dropped before measuring"),
        ("batch_size", 16, "per_device_train_batch_size"), ("num_generations", 4, None),
        ("max_completion_length", 32, None), ("correction_num_generations", 4, None),
        ("correction_micro_batch", None, None), ("seed", 0, None),
    ):  # fmt: skip
        parser.add_argument(f"--{name}", type=int, default=default, help=help_text)
    parser.add_argument("--correction_anchor_fraction", type=float, default=0.125)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--cpu", action="store_true", help="stay on CPU even when CUDA is available")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared machine; 0: torch default)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any CIPOConfig field")
    return parser.parse_args(argv)


def load_dataset_for(args: argparse.Namespace) -> Any:
    from cipo.data import DataArguments, load_train_dataset

    answer = None if args.answer_column.lower() == "none" else args.answer_column
    return load_train_dataset(
        DataArguments(args.dataset, prompt_column=args.prompt_column, answer_column=answer, reward_funcs=args.reward_funcs)
    )


def quiet_libraries() -> None:
    import datasets
    import transformers

    for category in (FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def describe(args: argparse.Namespace, cuda: bool, model_label: str, loads: tuple[float, float]) -> str:
    return (
        f"device: {device_name(cuda)} | model: {model_label} | data: {args.dataset}\n"
        f"batch {args.batch_size} x {args.num_generations} generations, completions <= "
        f"{args.max_completion_length} tokens, corrections: {args.correction_num_generations} per anchor, "
        f"anchor fraction {args.correction_anchor_fraction}, correction_micro_batch {args.correction_micro_batch}\n"
        f"{args.steps} measured steps after {args.warmup} warm-up, medians; "
        f"load average {loads[0]:.2f} at start, {loads[1]:.2f} at end"
    )


def run_notes(grpo_run: dict, cipo_run: dict, cipo: dict) -> list[str]:
    notes = [f"{name}: {run['positions'][1]}" for name, run in (("GRPO", grpo_run), ("CIPO", cipo_run))]
    if not cipo_run["memory"]["rss_reset"]:
        notes.append("the RSS high-water mark could not be reset: peaks are the process's lifetime peak")
    if not 0 < (calls := cipo["correction_generate_calls"]) <= 1:  # below 1 when num_iterations > 1
        notes.append(f"correction _generate calls per step = {calls:g}, expected 1 (0: no anchors were selected)")
    return notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and args.threads > 0:
        torch.set_num_threads(args.threads)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cipo-bench-model-") as model_dir:
        model, model_label = args.model, args.model
        if model is None:
            from cipo.builtin_models import save_tiny_model

            model = str(save_tiny_model(model_dir, "llama", hidden_size=args.hidden_size, num_layers=args.layers))
            model_label = f"tiny llama (hidden {args.hidden_size}, {args.layers} layers, random init)"
        dataset = load_dataset_for(args)
        grpo_run = run_once(args, model, dataset, use_correction=False, cuda=cuda)
        cipo_run = run_once(args, model, dataset, use_correction=True, cuda=cuda)
    grpo, cipo = summarize(grpo_run), summarize(cipo_run)
    loads = (load_start, os.getloadavg()[0])
    result = print_report(describe(args, cuda, model_label, loads), grpo, cipo, run_notes(grpo_run, cipo_run, cipo))
    summary = {
        "device": device_name(cuda),
        "model": model_label,
        "dataset": args.dataset,
        "steps": args.steps,
        "warmup": args.warmup,
        "load_average": [round(load, 2) for load in loads],
        "machinery_overhead": round(result["direct"], 4),
        "step_time_ratio": round(result["step_ratio"], 4),
        "within_budget": result["direct"] <= BUDGET,
        "positions_match": grpo_run["positions"][0] and cipo_run["positions"][0],
        "correction_generate_calls_per_step": cipo["correction_generate_calls"],
        **{name: {key: _round(value) for key, value in run.items()} for name, run in (("grpo", grpo), ("cipo", cipo))},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary), flush=True)
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


if __name__ == "__main__":
    sys.exit(main())
