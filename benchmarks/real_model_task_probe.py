"""Which lab task suits the real model? Its pass rates on the lab's arithmetic levels under a few answer formats.

For each (level, instruction) it samples ``--samples`` completions of ``--problems`` held-out lab problems with the
lab's own evaluator (``cipo.lab.evaluate.generate``, graded by ``math_reward``) and prints one table row: the mean
pass rate, the share of problems whose pass rate lies strictly between 0 and 1 (the groups GRPO learns from), the
share of completions with a ``\\boxed{}``, the mean completion length and the generation throughput.

    OMP_NUM_THREADS=2 python benchmarks/real_model_task_probe.py --levels 0,1 --problems 16 --samples 8
"""

from __future__ import annotations

import argparse
import time

INSTRUCTIONS = {
    "boxed": "Put the final answer in \\boxed{}.",
    "only": "Answer with only the final result in \\boxed{}.",
    "short": "Give a short answer and put the final result in \\boxed{}.",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--levels", default="0,1", help="lab task levels (cipo.lab.tasks.LEVELS)")
    parser.add_argument("--instructions", default=",".join(INSTRUCTIONS), help=f"of {', '.join(INSTRUCTIONS)}")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--show", type=int, default=2, help="completions printed per row")
    return parser.parse_args()


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cipo.builtin_models import resolve_model
    from cipo.lab.evaluate import EvalConfig, generate, grade_groups
    from cipo.lab.task_api import MathTask
    from cipo.lab.tasks import TaskConfig, make_test_split

    args = parse_args()
    torch.set_num_threads(args.threads)
    path = resolve_model(args.model)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = EvalConfig(temperature=args.temperature, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    print("| level | instruction | pass rate | problems 0<rate<1 | boxed | mean tokens | samples/s |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for level in (int(x) for x in args.levels.split(",")):
        for name in args.instructions.split(","):
            task = TaskConfig(levels=(level,), test_size=args.problems, hard_levels=(), hard_test_size=0,
                              instruction=INSTRUCTIONS[name])
            problems = make_test_split(task)
            start = time.perf_counter()
            texts = generate(model, tokenizer, [p.messages() for p in problems], config, num_per_prompt=args.samples)
            seconds = time.perf_counter() - start
            rates = [sum(grades) / len(grades) for grades in grade_groups(MathTask(), problems, texts)]
            flat = [text for row in texts for text in row]
            tokens = sum(len(tokenizer(text)["input_ids"]) for text in flat) / len(flat)
            boxed = sum("\\boxed{" in text for text in flat) / len(flat)
            mixed = sum(0 < rate < 1 for rate in rates) / len(rates)
            print(f"| {level} | {name} | {sum(rates) / len(rates):.3f} | {mixed:.2f} | {boxed:.2f} | {tokens:.1f} | "
                  f"{len(flat) / seconds:.2f} |", flush=True)
            for text in flat[: args.show]:
                print(f"<!-- {problems[0].messages()[0]['content']!r} -> {text!r} -->", flush=True)


if __name__ == "__main__":
    main()
