"""``cipo lab``: GRPO against CIPO on a synthetic task with a tiny model, on a CPU, with a report.

    cipo lab                      # the quick preset, one seed (intervals, but no verdict: use --seeds 5)
    cipo lab --seeds 3            # three seeds, mean and spread
    cipo lab --task code          # program synthesis, graded in the sandbox
    cipo lab --seeds 5 --ablate   # and CIPO with each part switched off, one table vs full CIPO
    cipo lab --resume runs/lab-...  # finish an interrupted run (what it finished is kept)
    cipo lab --set rl.steps=80 --set eval.num_samples=128
    python -m cipo.lab.cli --preset tiny --output-dir /tmp/runs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cipo.lab.config import PRESETS, SECTIONS, LabConfig, apply_override, config_from_dict
from cipo.lab.task_api import TASK_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cipo lab",
        description="Warm-start a tiny model on a synthetic math task, train GRPO and CIPO from it under the same "
        "budget, evaluate all three and write runs/lab-<timestamp>/report.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Override any field with --set section.field=value; sections: "
        + ", ".join(SECTIONS)
        + ". --show-config prints them all.",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="starting values (default: quick)")
    parser.add_argument("--quick", action="store_const", const="quick", dest="preset", help="same as --preset quick")
    parser.add_argument("--task", choices=TASK_NAMES, help="the task (default math): same as --set task.name=TASK")
    parser.add_argument("--seeds", type=int, help="number of seeds to run (default 1)")
    parser.add_argument("--seed", type=int, help="first seed (default 0)")
    parser.add_argument("--output-dir", help="parent folder of the run folder (default runs)")
    parser.add_argument("--cache-dir", help="warm-start cache (default runs/cache)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 2)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="override a field")
    parser.add_argument("--ablate", action="store_true",
                        help="also train CIPO with each part switched off in turn (the ablation table)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--show-config", action="store_true", help="print the resolved configuration and exit")
    parser.add_argument("--report-only", metavar="RUN_DIR", help="rebuild report.md and plots from RUN_DIR/metrics.json")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="finish an interrupted run: its stored configuration, only the seeds and ablations missing")
    return parser


def resolve_config(args: argparse.Namespace) -> LabConfig:
    config = PRESETS[args.preset]()
    for name in ("seeds", "seed", "output_dir", "cache_dir", "threads"):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    if args.no_progress:
        config.show_progress = False
    if args.ablate:
        config.ablate = True
    if args.task:
        config.task.name = args.task
    for assignment in args.set:
        apply_override(config, assignment)
    if config.seeds < 1:
        raise ValueError("--seeds must be at least 1")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.report_only:
        from cipo.lab.report import write_report

        run_dir = Path(args.report_only)
        write_report(run_dir, json.loads((run_dir / "metrics.json").read_text()))
        print(run_dir / "report.md")
        return 0
    if args.resume:
        return resume(Path(args.resume), args, argv, parser)
    try:
        config = resolve_config(args)
    except ValueError as error:
        parser.error(str(error))
    if args.show_config:
        print(json.dumps(dataclasses.asdict(config), indent=1))
        return 0
    from cipo.lab.runner import run_lab

    run_dir = run_lab(config, command=" ".join(["cipo lab", *argv]))
    print(run_dir / "report.md")
    return 0


def resume(run_dir: Path, args: argparse.Namespace, argv: list[str], parser: argparse.ArgumentParser) -> int:
    """Finish ``run_dir`` with the configuration it was started with (only --no-progress may be added)."""
    from cipo.lab.runner import load_metrics, run_lab

    given = {"--seeds": args.seeds, "--seed": args.seed, "--output-dir": args.output_dir, "--cache-dir": args.cache_dir,
             "--threads": args.threads, "--task": args.task, "--set": args.set or None, "--ablate": args.ablate or None,
             "--preset": None if args.preset == "quick" else args.preset}
    changed = [flag for flag, value in given.items() if value is not None]
    if changed:
        parser.error("--resume takes the run's stored configuration; drop " + ", ".join(changed))
    try:
        config = config_from_dict(load_metrics(run_dir)["config"])
    except (OSError, ValueError) as error:
        parser.error(str(error))
    config.show_progress = not args.no_progress
    run_lab(config, command=" ".join(["cipo lab", *argv]), resume=run_dir)
    print(run_dir / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
