"""The lab end to end: warm start, GRPO and CIPO for each seed, evaluation of every model, and the report.

``run_lab(config)`` returns the run folder, which holds ``report.md``, ``metrics.json`` and the plots.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import platform
import resource
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cipo.lab.ablation import VARIANTS, variant_config
from cipo.lab.compare import RunResult, rl_dataset, rl_problem_pool, train_policy
from cipo.lab.config import LabConfig
from cipo.lab.evaluate import EvalConfig, evaluate
from cipo.lab.report import start_source, write_report
from cipo.lab.task_api import LabTask, get_task
from cipo.lab.warmstart import load_or_train_warm_start

MODEL_NAMES = {
    "warm": "Warm start",
    "grpo": "GRPO",
    "cipo": "CIPO",
    "grpo_equal_tokens": "GRPO, equal tokens",
}
HISTORY_KEYS = ("reward", "reward_std", "completions/mean_length", "frac_reward_zero_std")


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def run_lab(config: LabConfig, command: str = "cipo lab", resume: Path | None = None) -> Path:
    """Run the lab into a new run folder, or finish the interrupted run in ``resume`` (its ``metrics.json``)."""
    with quiet_libraries(), PeakMemory() as memory:
        return _run_lab(config, command, memory, resume)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """The lab's own progress bars only: no weight-loading bars, no deprecation notices from the libraries."""
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module="torch")
            yield
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


def _run_lab(config: LabConfig, command: str, memory: PeakMemory, resume: Path | None = None) -> Path:
    torch.set_num_threads(config.threads)
    previous = load_metrics(resume) if resume is not None else None
    run_dir = resume if resume is not None else new_run_dir(Path(config.output_dir))
    timings: dict[str, float] = dict(previous["timings_seconds"]) if previous else {}
    start = time.perf_counter() - timings.pop("total", 0.0)  # a resumed run's wall time includes the first part
    say = print if config.show_progress else (lambda *a, **k: None)
    say(f"[cipo lab] preset {config.preset}: {'resuming' if previous else 'writing'} {run_dir}", file=sys.stderr)

    with timed(timings, "warm_start"):
        warm_path, warm_record = load_or_train_warm_start(
            config.task, config.model, config.warm_start, Path(config.cache_dir), config.show_progress
        )
    say(f"[cipo lab] warm start: {warm_path} ({start_source(warm_record)})", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(warm_path)
    task = get_task(config.task.name)
    test = task.make_test_split(config.task)
    train = rl_problem_pool(config, task, test)
    eval_config = config.eval

    if previous is not None:
        metrics = {**previous, "resumed": [*previous.get("resumed", []), command]}
    else:
        metrics = new_metrics(config, command, warm_path, warm_record, tokenizer, task, test, timings)
    seeds = range(config.seed, config.seed + config.seeds)
    # Every seed's main runs first, then the ablations seed by seed; the report is rewritten after each unit, so an
    # interrupted run keeps what it finished (metrics.json "finished" says how far it got, "all" once done) and
    # --resume runs only what is missing.
    pending_seeds = [seed for seed in seeds if seed not in metrics["seeds"]]
    pending_ablations = config.ablate and any("ablations" not in record for record in metrics["runs"])
    if not pending_seeds and not pending_ablations:
        save_progress(run_dir, metrics, timings, start, memory, "all")
    for seed in pending_seeds:
        metrics["runs"].append(run_seed(config, seed, warm_path, tokenizer, train, test, eval_config, timings))
        metrics["seeds"].append(seed)
        last = seed == pending_seeds[-1] and not config.ablate
        save_progress(run_dir, metrics, timings, start, memory, "all" if last else f"main runs of seed {seed}")
    if config.ablate:
        pending = [record for record in metrics["runs"] if "ablations" not in record]
        for record in pending:
            common = seed_common(config, record["seed"], warm_path, tokenizer, train)
            record["ablations"] = run_ablations(config, record["seed"], common, test, eval_config, timings)
            last = record is pending[-1]
            save_progress(run_dir, metrics, timings, start, memory,
                          "all" if last else f"ablations of seed {record['seed']}")
    say(f"[cipo lab] done in {metrics['timings_seconds']['total']:.0f}s: {run_dir / 'report.md'}", file=sys.stderr)
    return run_dir


def load_metrics(run_dir: Path) -> dict:
    """The ``metrics.json`` of a run folder to resume, with a clear error when there is none."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.json to resume from (is {run_dir} a cipo lab run folder?)")
    metrics = json.loads(path.read_text())
    for key in ("config", "runs", "seeds", "warm_start", "timings_seconds"):
        if key not in metrics:
            raise ValueError(f"{path}: field {key!r} is missing; not a cipo lab run that can be resumed")
    return metrics


def new_metrics(config: LabConfig, command: str, warm_path: Path, warm_record: dict, tokenizer, task: LabTask,  # noqa: ANN001
                test: list, timings: dict[str, float]) -> dict:
    """A fresh run's record, starting with the warm start and its evaluation."""
    with timed(timings, "evaluation"):
        warm_model = AutoModelForCausalLM.from_pretrained(warm_path)
        warm_eval = evaluate(warm_model, tokenizer, test, config.eval, "warm start", config.show_progress,
                             task).to_dict()
        del warm_model
    return {
        "command": command,
        "preset": config.preset,
        "config": config.to_dict(),
        "seeds": [],
        "warm_start": {
            "path": str(warm_path),
            "cached": warm_record["cached"],
            "train_seconds": warm_record["seconds"],
            "parameters": warm_record["parameters"],
            "vocab_size": warm_record["vocab_size"],
            "final_loss": sum(warm_record["losses"][-20:]) / max(1, len(warm_record["losses"][-20:])),
            "losses": warm_record["losses"],
            "eval": warm_eval,
            **{key: warm_record[key] for key in ("pretrained", "num_layers", "shipped") if key in warm_record},
        },
        "runs": [],
        "environment": environment(config),
        "test_problems": len(test),
    }


def run_seed(
    config: LabConfig,
    seed: int,
    warm_path: Path,
    tokenizer,  # noqa: ANN001
    train: list,
    test: list,
    eval_config: EvalConfig,
    timings: dict[str, float],
) -> dict:
    """CIPO for ``rl.steps`` steps, then one GRPO run: copied at the same step count, continued to equal tokens."""
    rl = config.rl
    common = seed_common(config, seed, warm_path, tokenizer, train)
    # The trainers save nothing (save_strategy="no"), but want an output folder.
    with tempfile.TemporaryDirectory(prefix="cipo-lab-") as scratch, timed(timings, "cipo"):
        cipo, _ = train_policy(f"CIPO seed {seed}", use_correction=True, max_steps=rl.steps,
                               output_dir=Path(scratch), **common)
    results = {"cipo": cipo}
    with tempfile.TemporaryDirectory(prefix="cipo-lab-") as scratch, timed(timings, "grpo"):
        max_steps = math.ceil(rl.steps * rl.max_equal_token_factor) if rl.equal_tokens else rl.steps
        grpo_long, grpo = train_policy(
            f"GRPO seed {seed}", use_correction=False, max_steps=max_steps, snapshot_step=rl.steps,
            stop_at_tokens=cipo.generated_tokens if rl.equal_tokens else None,
            output_dir=Path(scratch), **common,
        )
    results["grpo"] = grpo or grpo_long
    if rl.equal_tokens:
        results["grpo_equal_tokens"] = grpo_long
    record = {"seed": seed}
    with timed(timings, "evaluation"):
        for key, result in results.items():
            record[key] = evaluated(result, f"{MODEL_NAMES[key]} seed {seed}", common, test, eval_config)
    for result in results.values():
        result.model = None
    gc.collect()
    return record


def seed_common(config: LabConfig, seed: int, warm_path: Path, tokenizer, train: list) -> dict:  # noqa: ANN001
    """The arguments every training run of one seed shares (same warm start, data and seed)."""
    task = get_task(config.task.name)
    return {"warm_path": warm_path, "tokenizer": tokenizer, "dataset": rl_dataset(train, task), "config": config.rl,
            "seed": seed, "show_progress": config.show_progress, "task": task}


def save_progress(run_dir: Path, metrics: dict, timings: dict[str, float], start: float, memory: PeakMemory,
                  finished: str) -> None:
    metrics["finished"] = finished
    metrics["timings_seconds"] = {**timings, "total": time.perf_counter() - start}
    metrics["peak_memory_mib"] = memory.result_mib()
    write_report(run_dir, metrics)


def evaluated(result: RunResult, name: str, common: dict, test: list, eval_config: EvalConfig) -> dict:
    evaluation = evaluate(result.model, common["tokenizer"], test, eval_config, name, common["show_progress"],
                          common["task"])
    return summarize(result, evaluation.to_dict())


def run_ablations(
    config: LabConfig, seed: int, common: dict, test: list, eval_config: EvalConfig, timings: dict[str, float]
) -> dict[str, dict]:
    """CIPO with each part switched off (``cipo.lab.ablation.VARIANTS``), same warm start, seed and data."""
    out = {}
    for variant in VARIANTS:
        with tempfile.TemporaryDirectory(prefix="cipo-lab-") as scratch, timed(timings, "ablations"):
            result, _ = train_policy(f"CIPO, {variant}, seed {seed}", use_correction=True, max_steps=config.rl.steps,
                                     output_dir=Path(scratch), **{**common, "config": variant_config(config.rl, variant)})
            out[variant] = evaluated(result, f"CIPO, {variant}, seed {seed}", common, test, eval_config)
        result.model = None
    return out


def summarize(result: RunResult, evaluation: dict) -> dict:
    history = [
        {"step": entry.get("step", i + 1), **{k: v for k, v in entry.items() if k in HISTORY_KEYS or k.startswith("correction/")}}
        for i, entry in enumerate(result.log_history)
    ]
    cumulative, total = [], 0
    for tokens in result.tokens_per_step:
        total += tokens
        cumulative.append(total)
    return {
        "steps": result.steps,
        "generated_tokens": result.generated_tokens,
        "train_seconds": result.seconds,
        "history": history,
        "cumulative_tokens": cumulative,
        "eval": evaluation,
    }


def new_run_dir(root: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"lab-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = root / f"lab-{stamp}-{suffix}"
    path.mkdir(parents=True)
    return path


class PeakMemory:
    """Peak resident memory of the lab and its child processes (the verifier's workers), sampled twice a second
    from /proc; elsewhere only this process's own peak (``ru_maxrss``) is known."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="cipo-lab-memory")

    def __enter__(self) -> PeakMemory:
        if Path("/proc/self/status").exists():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_kib = max(self.peak_kib, tree_rss_kib())

    def result_mib(self) -> dict[str, float]:
        scale = 1024 if sys.platform != "darwin" else 1024 * 1024
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
        return {"lab_process": own, "with_children": max(own, self.peak_kib / 1024)}


def tree_rss_kib() -> int:
    """Resident memory of this process and its direct children, in KiB (Linux)."""
    pids = ["self"]
    for children in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += children.read_text().split()
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            status = Path(f"/proc/{pid}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    return total


def environment(config: LabConfig) -> dict[str, str | int]:
    import datasets
    import transformers
    import trl

    import cipo

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": __import__("os").cpu_count() or 0,
        "torch_threads": config.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "datasets": datasets.__version__,
        "cipo": cipo.__version__,
    }
