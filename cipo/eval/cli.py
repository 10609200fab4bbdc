"""``cipo eval``: evaluate a model on a benchmark, or compare finished runs.

    cipo eval --model PATH --benchmark math500 [--data FILE] --n 64 --k 1,8,32,64 [--correction] [--output DIR]
    cipo eval --compare RUN1 RUN2 ... [--output DIR]

Also runnable as ``python -m cipo.eval.cli ...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from cipo.eval.benchmarks import BenchmarkFormatError, benchmark_names, parse_columns
from cipo.eval.generation import BACKENDS, SamplingConfig
from cipo.eval.report import compare_runs
from cipo.eval.runner import PLOT_FILE, SAMPLES_FILE, TABLE_FILE, EvalConfig, EvalError, Evaluation
from cipo.eval.store import SampleFileError

PROG = "cipo eval"


def _help(config_class: type, name: str) -> str:
    """A field's help text from its dataclass, so that the CLI and the config never disagree."""
    return next(f.metadata["help"] for f in fields(config_class) if f.name == name)


def _ks(text: str) -> list[int]:
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--k takes comma-separated integers like 1,8,32; got {text!r}"
        ) from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"--k values must be integers >= 1; got {text!r}")
    return ks


def _columns(text: str) -> dict[str, str]:
    try:
        return parse_columns(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Measure pass@k, avg@k, maj@k and self-correction of a model on a benchmark. Samples go to "
        f"OUTPUT/{SAMPLES_FILE} as they are scored: rerun the same command to resume.",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN",
        help="Compare finished runs (their folders): one table and one pass@k plot.",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--model", help=_help(EvalConfig, "model"))
    run.add_argument(
        "--benchmark", help=_help(EvalConfig, "benchmark") + f" Known: {', '.join(benchmark_names())}."
    )
    run.add_argument("--data", help=_help(EvalConfig, "data"))
    run.add_argument("--task", choices=["math", "code"], help=_help(EvalConfig, "task"))
    run.add_argument("--columns", type=_columns, default={}, help=_help(EvalConfig, "columns"))
    run.add_argument("--n", type=int, default=1, help=_help(EvalConfig, "n"))
    run.add_argument("--k", type=_ks, default=None, help=_help(EvalConfig, "ks"))
    protocol = run.add_mutually_exclusive_group()
    protocol.add_argument(
        "--correction",
        action="store_true",
        help="Self-correction: each turn-1 sample gets a turn-2 review by the same model.",
    )
    protocol.add_argument(
        "--fix-attempts",
        action="store_true",
        help="Fix the attempts the dataset provides (column 'attempt'; see --columns).",
    )
    run.add_argument("--limit", type=int, help=_help(EvalConfig, "limit"))
    run.add_argument(
        "--output",
        help=_help(EvalConfig, "output_dir") + " With --compare: where to write the "
        "comparison (default runs/eval/compare).",
    )
    run.add_argument("--reward", help=_help(EvalConfig, "reward"))
    run.add_argument(
        "--correct-threshold", type=float, default=1.0, help=_help(EvalConfig, "correct_threshold")
    )
    run.add_argument("--instruction", help=_help(EvalConfig, "instruction"))
    run.add_argument("--max-attempt-tokens", type=int, help=_help(EvalConfig, "max_attempt_tokens"))
    sampling = parser.add_argument_group("sampling")
    defaults = SamplingConfig()
    sampling.add_argument(
        "--temperature", type=float, default=defaults.temperature, help=_help(SamplingConfig, "temperature")
    )
    sampling.add_argument("--top-p", type=float, default=defaults.top_p, help=_help(SamplingConfig, "top_p"))
    sampling.add_argument(
        "--max-new-tokens",
        type=int,
        default=defaults.max_new_tokens,
        help=_help(SamplingConfig, "max_new_tokens"),
    )
    sampling.add_argument("--seed", type=int, default=defaults.seed, help=_help(SamplingConfig, "seed"))
    backend = parser.add_argument_group("backend")
    backend.add_argument("--backend", choices=BACKENDS, default="auto", help=_help(EvalConfig, "backend"))
    backend.add_argument("--device", default="auto", help=_help(EvalConfig, "device"))
    backend.add_argument("--dtype", default="auto", help=_help(EvalConfig, "dtype"))
    backend.add_argument("--batch-size", type=int, help=_help(EvalConfig, "batch_size"))
    stats = parser.add_argument_group("statistics")
    stats.add_argument("--bootstrap", type=int, default=1000, help=_help(EvalConfig, "bootstrap_resamples"))
    stats.add_argument("--confidence", type=float, default=0.95, help=_help(EvalConfig, "confidence"))
    parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    return parser


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    mode = "correction" if args.correction else "fix" if args.fix_attempts else "standard"
    sampling = SamplingConfig(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    return EvalConfig(
        model=args.model,
        benchmark=args.benchmark,
        data=args.data,
        columns=args.columns,
        task=args.task,
        n=args.n,
        ks=args.k or [],
        mode=mode,
        limit=args.limit,
        output_dir=args.output,
        reward=args.reward,
        correct_threshold=args.correct_threshold,
        instruction=args.instruction,
        max_attempt_tokens=args.max_attempt_tokens,
        sampling=sampling,
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        bootstrap_resamples=args.bootstrap,
        confidence=args.confidence,
        progress=not args.no_progress,
    )


def _evaluate(args: argparse.Namespace) -> int:
    try:
        evaluation = Evaluation(config_from_args(args))
    except ValueError as error:  # SamplingConfig checks
        raise EvalError(str(error)) from error
    try:
        results = evaluation.run()
    except KeyboardInterrupt:
        print(
            f"\n{PROG}: interrupted. Every scored sample is saved in {evaluation.output_dir / SAMPLES_FILE}; "
            "rerun the same command to resume.",
            file=sys.stderr,
        )
        return 130
    output = evaluation.output_dir
    print((output / TABLE_FILE).read_text(encoding="utf-8"))
    speed = results["throughput_this_run"]
    if speed["samples_per_second"]:
        print(
            f"generated {speed['generated_samples']} samples in {speed['generation_seconds']} s: "
            f"{speed['samples_per_second']} samples/s, {speed['tokens_per_second']} tokens/s"
        )
    print(
        f"wrote {output / SAMPLES_FILE}, {output / 'results.json'}, {output / TABLE_FILE}, {output / PLOT_FILE}"
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    output = Path(args.output or Path("runs") / "eval" / "compare")
    try:
        table = compare_runs(args.compare, output)
    except (ValueError, KeyError) as error:  # a results.json that is not one
        raise EvalError(f"cannot compare {args.compare}: {error!r}") from error
    print(table)
    print(f"wrote {output / 'compare.md'} and {output / 'compare_pass_at_k.png'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not args.compare and not (args.model and args.benchmark):
        parser.error("give --model and --benchmark to evaluate, or --compare RUN... to compare runs")
    if args.compare and args.model:
        parser.error("--compare reads finished runs: it takes no --model")
    try:
        return _compare(args) if args.compare else _evaluate(args)
    except (EvalError, BenchmarkFormatError, SampleFileError, FileNotFoundError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
