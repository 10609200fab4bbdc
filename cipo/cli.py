"""The ``cipo`` command: ``cipo train``, ``cipo report``, ``cipo eval``, ``cipo lab``.

``cipo train --config FILE.yaml [--field value ...]`` parses like TRL's scripts: the YAML sets defaults for every
field of ``DataArguments``, ``CIPOConfig`` and TRL's ``ModelConfig``, and command-line flags override them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

USAGE = """usage: cipo <command> [args]

commands:
  train   train a model with CIPO (or GRPO with --use_correction false)
  report  report.md with plots of a finished (or checkpointed) 'cipo train' run
  eval    evaluate a model: pass@k, self-correction, standard benchmarks
  lab     CIPO against GRPO end to end on a tiny model (CPU)

'cipo <command> --help' shows each command's options."""


def train_main(argv: Sequence[str]) -> int:
    started_at = time.time()
    from transformers import AutoTokenizer
    from trl import ModelConfig, TrlParser, get_peft_config

    from cipo.builtin_models import resolve_model
    from cipo.config import CIPOConfig
    from cipo.data import DataArguments, load_train_dataset
    from cipo.rewards import get_reward
    from cipo.train_report import record_run
    from cipo.trainer import CIPOTrainer

    parser = TrlParser((DataArguments, CIPOConfig, ModelConfig), prog="cipo train")
    data_args, config, model_args = parser.parse_args_and_config(args=list(argv))
    if not model_args.model_name_or_path:
        parser.error("--model_name_or_path is required (a local path or a hub id)")
    model_path = resolve_model(model_args.model_name_or_path)
    if model_args.dtype is not None:
        config.model_init_kwargs = {**(config.model_init_kwargs or {}), "dtype": model_args.dtype}

    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=model_args.model_revision)
    dataset = load_train_dataset(data_args)
    reward_funcs = [get_reward(name) for name in data_args.reward_funcs]
    trainer = CIPOTrainer(
        model=model_path,
        reward_funcs=reward_funcs,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    record_run(trainer, data_args, model_args, started_at)
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model(config.output_dir)
    trainer.save_state()
    record_run(trainer, data_args, model_args, started_at, finished=True)
    if trainer.is_world_process_zero():
        print(f"Report: cipo report {config.output_dir}")
    return 0


def _run_subcommand(module: str, argv: Sequence[str]) -> int:
    import importlib

    return int(importlib.import_module(module).main(list(argv)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "train":
        return train_main(rest)
    if command == "eval":
        return _run_subcommand("cipo.eval.cli", rest)
    if command == "report":
        return _run_subcommand("cipo.train_report", rest)
    if command == "lab":
        return _run_subcommand("cipo.lab.cli", rest)
    print(f"cipo: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
