"""Wall time of one plain GRPO step and one CIPO step on the real model (SmolLM2-135M-Instruct), same sizes.

Both go through ``CIPOTrainer`` (``use_correction=False`` is GRPO), on ``builtin:arithmetic`` graded by the math
reward, fp32 on CPU. Only the top ``--trainable-layers`` decoder layers (and the final norm) are trained: the
backward pass then stops there, which is the largest saving on a CPU. The CIPO step adds
``anchors x correction_num_generations`` correction rollouts, whose prompts hold the problem and the attempt.

    OMP_NUM_THREADS=1 python benchmarks/real_model_step.py --prompts 4 --generations 4 --max-tokens 32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--generations", type=int, default=4, help="rollouts per prompt")
    parser.add_argument("--max-tokens", type=int, default=32, help="most tokens per rollout")
    parser.add_argument("--trainable-layers", type=int, default=2, help="top decoder layers trained (0: all)")
    parser.add_argument("--anchor-fraction", type=float, default=0.125)
    parser.add_argument("--correction-generations", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1, help="steps timed per method")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default="grpo,cipo")
    return parser.parse_args()


def load_model(path: str, trainable_layers: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    from cipo.lab.model import train_top_layers

    return train_top_layers(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), trainable_layers)


def time_method(method: str, path: str, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback

    from cipo import CIPOConfig, CIPOTrainer
    from cipo.data import arithmetic_rows
    from cipo.rewards import get_reward

    step_seconds: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_: Any, **__: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            step_seconds.append(time.perf_counter() - self.start)

    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]} for r in arithmetic_rows()]
    config = CIPOConfig(
        output_dir=str(output / method),
        use_correction=method == "cipo",
        per_device_train_batch_size=args.prompts * args.generations,
        num_generations=args.generations,
        max_completion_length=args.max_tokens,
        correction_num_generations=args.correction_generations,
        correction_anchor_fraction=args.anchor_fraction,
        correction_max_attempt_tokens=args.max_tokens,
        max_steps=args.steps,
        learning_rate=1e-5,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )
    trainer = CIPOTrainer(
        model=load_model(path, args.trainable_layers),
        reward_funcs=[get_reward("math")],
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(path),
        callbacks=[StepTimer()],
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    return {"method": method, "step_seconds": [round(s, 1) for s in step_seconds], "logs": logged}


def main() -> None:
    import torch

    from cipo.builtin_models import resolve_model

    args = parse_args()
    torch.set_num_threads(args.threads)
    path = resolve_model(args.model)
    sizes = {k: v for k, v in vars(args).items() if k != "methods"}
    with TemporaryDirectory() as scratch:
        for method in args.methods.split(","):
            result = time_method(method, path, args, Path(scratch))
            print(json.dumps({**result, "sizes": sizes}), flush=True)


if __name__ == "__main__":
    main()
