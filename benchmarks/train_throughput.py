"""What CIPO costs over GRPO: wall time per step by section, tokens/s and peak memory, same model, same data.

    python benchmarks/train_throughput.py                     # tiny local Llama (hidden 128, 4 layers), CPU ok
    python benchmarks/train_throughput.py --model PATH --dataset data.jsonl --steps 10
    python benchmarks/train_throughput.py --correction_micro_batch 4 --set use_vllm=true --set vllm_mode=colocate

Both runs use ``CIPOTrainer`` in this process, first with ``use_correction=False`` (plain GRPO), then with
corrections, for ``--warmup`` + ``--steps`` optimizer steps each; warm-up steps are dropped and every figure is
the median over the measured steps. Sections are timed by wrapping the trainer's own methods on the instance:

* generation: ``_generate`` outside corrections; correction generation: ``_generate`` inside
  ``_correction_generation`` (its calls per step are counted: CIPO batches corrections into one call);
* reward: ``_calculate_rewards``; log-probs: ``_get_per_token_logps_and_entropies`` under ``no_grad``
  (old/ref log-probs; none with the default single-iteration, beta=0 settings);
* optimization: the step minus ``_generate_and_score_completions`` (forward, backward, optimizer step);
* CIPO machinery, measured inside the CIPO steps, is two things. (a) What CIPO's
  ``_generate_and_score_completions`` does after the parent's step, from ``_select_anchors`` to the return,
  minus the correction tokens' generation and log-probs: selection, prompt building (``_correction_inputs``),
  extra scoring (rewards of the corrections), correction bookkeeping (the parent's padding, metrics and logs on
  the correction rows, the metric diversion), advantages, batch assembly (``concat_batches``) and the rest
  (stats, replay update). (b) Assembly padding: appending the correction rows re-pads every row to the widest
  prompt and completion of the merged batch, so the training forward can compute positions that neither batch
  needs on its own. A forward pre-hook counts the positions the training forward computes; those beyond the two
  batches at their own widths are priced at the step's optimization time per position (an estimate: linear in
  positions, while attention is not).

``machinery_overhead`` is (GRPO step + machinery) / GRPO step; the budget is 1.05. The issue's other route,
(CIPO step - correction generation - correction training) / GRPO step with correction training = CIPO
optimization - GRPO optimization, is printed too, but it subtracts medians of two different runs: their
rollouts diverge after the first update (different lengths, different numbers of EOS), and on a shared machine
two medians of a few steps easily differ by more than the 5% being measured; it also books the assembly padding
as correction training. The direct figure has neither problem, so it is the headline; both are in the JSON.

On CPU the run uses one torch thread by default (``--threads``): on a shared 2-core machine, two threads per
process made generation 5-10x slower and far noisier than one.

Peak memory: CPU resident-set high-water (``VmHWM``), reset before each run by writing 5 to
``/proc/self/clear_refs`` where the kernel allows it (else it is the process's lifetime peak, marked "not
reset"); the allocator keeps memory freed by the first run, so the second run's peak starts from a higher
floor: compare the "over start" rows. On CUDA, ``torch.cuda.max_memory_allocated`` reset between runs.

The last line printed is one JSON object (device, per-step medians, ratios, ``machinery_overhead``,
``step_time_ratio``) for scripts.
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
        self.sections: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.tail_start: float | None = None
        self.step_start = 0.0
        self.records: list[dict[str, float]] = []

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def begin_step(self) -> None:
        self.sections.clear()
        self.counts.clear()
        self.tail_start = None
        self.step_start = self.now()

    def end_step(self) -> None:
        step = self.now() - self.step_start
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


def instrument(trainer: Any, clock: SectionClock) -> Callable[[], None]:
    """Wrap the trainer's step pieces on the instance (and ``cipo.trainer.concat_batches``); returns an undo."""
    import cipo.trainer as trainer_module

    _wrap_generation_and_scoring(trainer, clock)
    _wrap_cipo_pieces(trainer, clock)
    _wrap_training(trainer, clock)
    concat = trainer_module.concat_batches
    trainer_module.concat_batches = _measured_concat(concat, clock)
    hook = trainer.model.register_forward_pre_hook(_position_counter(clock), with_kwargs=True)

    def undo() -> None:
        trainer_module.concat_batches = concat
        hook.remove()

    return undo


def _wrap_generation_and_scoring(trainer: Any, clock: SectionClock) -> None:
    import torch

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
        try:
            return generate_and_score(inputs)
        finally:
            end = clock.now()
            clock.sections["generate_and_score"] += end - start
            if clock.tail_start is not None:
                clock.sections["cipo_tail"] += end - clock.tail_start
                clock.tail_start = None

    trainer._generate = clock.timed(counted_generate, "generation", "correction_generation")
    trainer._calculate_rewards = clock.timed(trainer._calculate_rewards, "reward", "extra_scoring")
    trainer._get_per_token_logps_and_entropies = scoring_logps
    trainer._generate_and_score_completions = timed_generate_and_score


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


def _wrap_training(trainer: Any, clock: SectionClock) -> None:
    compute_loss = trainer.compute_loss

    def counted_compute_loss(model: Any, inputs: dict, *args: Any, **kwargs: Any) -> Any:
        mask = inputs["completion_mask"]
        if inputs.get("tool_mask") is not None:
            mask = mask * inputs["tool_mask"]
        clock.counts["trained_tokens"] += int(mask.sum())
        return compute_loss(model, inputs, *args, **kwargs)

    trainer.compute_loss = counted_compute_loss


def _measured_concat(concat: Callable, clock: SectionClock) -> Callable:
    timed_concat = clock.timed(concat, "batch_assembly")

    def positions(batch: dict) -> int:
        return batch["prompt_ids"].size(0) * (batch["prompt_ids"].size(1) + batch["completion_ids"].size(1))

    def measured_concat(first: dict, second: dict, *args: Any, **kwargs: Any) -> dict:
        clock.counts["separate_positions"] += positions(first) + positions(second)
        return timed_concat(first, second, *args, **kwargs)

    return measured_concat


def _position_counter(clock: SectionClock) -> Callable:
    import torch

    def count(_module: Any, args: tuple, kwargs: dict) -> None:
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if torch.is_grad_enabled() and input_ids is not None:  # the training forward, not generation
            clock.counts["trained_positions"] += input_ids.numel()

    return count


def derive_step(raw: dict[str, float]) -> dict[str, float]:
    """Per-step figures from raw section times (all in seconds) and counters."""
    get = raw.get
    optimization = raw["step"] - get("generate_and_score", 0.0)
    trained_positions = get("trained_positions", 0)
    # Positions the training forward computes beyond what the two batches cost at their own widths: the
    # padding that appending long correction prompts adds to the original rows (and vice versa).
    padding_positions = max(trained_positions - get("separate_positions", 0), 0) if get("separate_positions") else 0
    padding_time = optimization * padding_positions / trained_positions if trained_positions else 0.0
    correction_tokens = get("correction_generation", 0.0) + get("correction_logprobs", 0.0)
    machinery = max(get("cipo_tail", 0.0) - correction_tokens, 0.0) + padding_time
    bookkeeping = get("correction_phase", 0.0) - correction_tokens - get("extra_scoring", 0.0)
    named = {
        "selection": get("selection", 0.0),
        "prompt_building": get("prompt_building", 0.0),
        "extra_scoring": get("extra_scoring", 0.0),
        "correction_bookkeeping": max(bookkeeping, 0.0),
        "advantages": get("advantages", 0.0),
        "batch_assembly": get("batch_assembly", 0.0),
        "assembly_padding": padding_time,
    }
    named["other_machinery"] = max(machinery - sum(named.values()), 0.0)
    originals = get("generation", 0.0) + get("reward", 0.0) + get("logprobs", 0.0)
    return {
        "step": raw["step"],
        "generation": get("generation", 0.0),
        "correction_generation": get("correction_generation", 0.0),
        "reward": get("reward", 0.0),
        "logprobs": get("logprobs", 0.0),
        "correction_logprobs": get("correction_logprobs", 0.0),
        "optimization": optimization,
        "grpo_other": max(get("generate_and_score", 0.0) - get("cipo_tail", 0.0) - originals, 0.0),
        "machinery": machinery,
        **named,
        "generate_calls": get("generate_calls", 0),
        "correction_generate_calls": get("correction_generate_calls", 0),
        "generated_tokens": get("generated_tokens", 0) + get("correction_generated_tokens", 0),
        "correction_generated_tokens": get("correction_generated_tokens", 0),
        "trained_tokens": get("trained_tokens", 0),
        "trained_positions": trained_positions,
        "padding_positions": padding_positions,
    }


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
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_memory(cuda: bool) -> dict[str, float | None]:
    import resource

    hwm_kib = _proc_status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result: dict[str, float | None] = {"rss_peak_mib": hwm_kib / 1024, "gpu_peak_mib": None}
    if cuda:
        import torch

        result["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


# ----------------------------------------------------------------------------------------------- runs
def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    import yaml

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def make_config(args: argparse.Namespace, output_dir: str, use_correction: bool, cuda: bool) -> Any:
    import torch

    from cipo.config import CIPOConfig

    bf16 = cuda and torch.cuda.is_bf16_supported()
    settings = dict(
        output_dir=output_dir,
        use_correction=use_correction,
        correction_num_generations=args.correction_num_generations,
        correction_anchor_fraction=args.correction_anchor_fraction,
        correction_micro_batch=args.correction_micro_batch,
        per_device_train_batch_size=args.batch_size,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        max_steps=args.warmup + args.steps,
        learning_rate=args.learning_rate,
        logging_steps=args.warmup + args.steps,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=bf16,  # TRL's default is bf16=True, which on CPU means slow bf16 autocast
        model_init_kwargs={"dtype": "bfloat16"} if bf16 else None,
        seed=args.seed,
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
        undo = instrument(trainer, clock)
        rss_reset = reset_peak_memory(cuda)
        rss_start = (_proc_status_kib("VmRSS") or 0) / 1024
        try:
            trainer.train()
        finally:
            undo()
        memory = peak_memory(cuda)
        del trainer
    gc.collect()
    return {
        "steps": clock.records[args.warmup :],
        "memory": {**memory, "rss_start_mib": rss_start, "rss_reset": rss_reset},
    }


def medians(records: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(record[key] for record in records) for key in records[0]}


# ----------------------------------------------------------------------------------------------- report
ROWS = (
    ("step", "step (wall)", "s"),
    ("generation", "  generation", "s"),
    ("correction_generation", "  correction generation", "s"),
    ("reward", "  reward", "s"),
    ("logprobs", "  old/ref log-probs (no grad)", "s"),
    ("correction_logprobs", "  correction log-probs (no grad)", "s"),
    ("optimization", "  optimization (fwd+bwd+opt)", "s"),
    ("grpo_other", "  GRPO bookkeeping", "s"),
    ("machinery", "  CIPO machinery", "s"),
    ("selection", "    selection", "s"),
    ("prompt_building", "    prompt building", "s"),
    ("extra_scoring", "    extra scoring (rewards)", "s"),
    ("correction_bookkeeping", "    correction bookkeeping", "s"),
    ("advantages", "    advantages", "s"),
    ("batch_assembly", "    batch assembly", "s"),
    ("assembly_padding", "    assembly padding (est.)", "s"),
    ("other_machinery", "    other (stats, replay)", "s"),
    ("generate_calls", "_generate calls / step", "n"),
    ("correction_generate_calls", "  of them for corrections", "n"),
    ("generated_tokens", "generated tokens / step", "n"),
    ("gen_tok_s", "generated tokens / s", "r"),
    ("trained_tokens", "trained (loss) tokens / step", "n"),
    ("train_tok_s", "trained tokens / s", "r"),
    ("trained_positions", "training forward positions / step", "n"),
    ("padding_positions", "  padding from batch assembly", "n"),
    ("rss_peak_mib", "peak RSS (MiB)", "m"),
    ("rss_over_start_mib", "  over start of run (MiB)", "m"),
    ("gpu_peak_mib", "peak GPU allocated (MiB)", "m"),
)


def summarize(run: dict) -> dict[str, float | None]:
    figures: dict[str, float | None] = dict(medians(run["steps"]))
    step = figures["step"]
    figures["gen_tok_s"] = figures["generated_tokens"] / step
    figures["train_tok_s"] = figures["trained_tokens"] / step
    memory = run["memory"]
    figures["rss_peak_mib"] = memory["rss_peak_mib"]
    figures["rss_over_start_mib"] = memory["rss_peak_mib"] - memory["rss_start_mib"]
    figures["gpu_peak_mib"] = memory["gpu_peak_mib"]
    return figures


def _cell(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "s":
        return f"{value * 1000:.1f} ms"
    if kind == "n":
        return f"{value:g}"
    return f"{value:,.0f}"


def _ratio(cipo: float | None, grpo: float | None) -> str:
    if cipo is None or grpo is None:
        return "-"
    if grpo == 0:
        return "-" if cipo == 0 else "new"
    return f"{cipo / grpo:.3f}"


def overheads(grpo: dict, cipo: dict) -> dict[str, float]:
    direct = 1 + cipo["machinery"] / grpo["step"]
    correction_training = cipo["optimization"] - grpo["optimization"]
    without = cipo["step"] - cipo["correction_generation"] - cipo["correction_logprobs"] - correction_training
    return {"direct": direct, "subtraction": without / grpo["step"], "step_ratio": cipo["step"] / grpo["step"]}


def print_report(header: str, grpo: dict, cipo: dict, notes: list[str]) -> dict[str, float]:
    print(header)
    print(f"{'median per step':34} {'GRPO':>12} {'CIPO':>12} {'CIPO/GRPO':>10}")
    for key, label, kind in ROWS:
        print(f"{label:34} {_cell(grpo[key], kind):>12} {_cell(cipo[key], kind):>12} {_ratio(cipo[key], grpo[key]):>10}")
    result = overheads(grpo, cipo)
    print(
        f"machinery overhead, direct:      (GRPO step + machinery) / GRPO step = {result['direct']:.3f} "
        f"(budget {BUDGET})"
    )
    print(
        "machinery overhead, subtraction: (CIPO step - corr. generation - corr. training) / GRPO step = "
        f"{result['subtraction']:.3f}"
    )
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
    parser.add_argument("--hidden_size", type=int, default=128, help="tiny model only")
    parser.add_argument("--layers", type=int, default=4, help="tiny model only")
    parser.add_argument("--steps", type=int, default=8, help="measured steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="steps dropped before measuring")
    parser.add_argument("--batch_size", type=int, default=16, help="per_device_train_batch_size")
    parser.add_argument("--num_generations", type=int, default=4)
    parser.add_argument("--max_completion_length", type=int, default=32)
    parser.add_argument("--correction_num_generations", type=int, default=4)
    parser.add_argument("--correction_anchor_fraction", type=float, default=0.125)
    parser.add_argument("--correction_micro_batch", type=int, default=None)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="stay on CPU even when CUDA is available")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared machine; 0: torch default)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any CIPOConfig field")
    return parser.parse_args(argv)


def load_dataset_for(args: argparse.Namespace) -> Any:
    from cipo.data import DataArguments, load_train_dataset

    answer = None if args.answer_column.lower() == "none" else args.answer_column
    data_args = DataArguments(
        dataset_name=args.dataset,
        prompt_column=args.prompt_column,
        answer_column=answer,
        reward_funcs=args.reward_funcs,
    )
    return load_train_dataset(data_args)


def quiet_libraries() -> None:
    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
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


def run_notes(cipo_run: dict, cipo: dict) -> list[str]:
    notes = []
    if not cipo_run["memory"]["rss_reset"]:
        notes.append("the RSS high-water mark could not be reset: peaks are the process's lifetime peak")
    if cipo["correction_generate_calls"] != 1:
        calls = cipo["correction_generate_calls"]
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
    result = print_report(describe(args, cuda, model_label, loads), grpo, cipo, run_notes(cipo_run, cipo))
    summary = {
        "device": device_name(cuda),
        "model": model_label,
        "dataset": args.dataset,
        "steps": args.steps,
        "warmup": args.warmup,
        "load_average": [round(load, 2) for load in loads],
        "machinery_overhead": round(result["direct"], 4),
        "machinery_overhead_subtraction": round(result["subtraction"], 4),
        "step_time_ratio": round(result["step_ratio"], 4),
        "within_budget": result["direct"] <= BUDGET,
        "correction_generate_calls_per_step": cipo["correction_generate_calls"],
        "grpo": {key: _round(value) for key, value in grpo.items()},
        "cipo": {key: _round(value) for key, value in cipo.items()},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary), flush=True)
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


if __name__ == "__main__":
    sys.exit(main())
