"""Where the evaluator's sampling time goes on the real model (SmolLM2-135M-Instruct), and its samples/s.

``--profile`` times one prefill, one KV-cached decode step and one top-p filtering step (the full-vocabulary sort
against the top-candidates path of ``cipo.eval.generation``) at a batch size. Without it, GSM8K prompts are
sampled through ``TransformersGenerator`` as ``cipo eval`` does, and samples/s and tokens/s are printed.

    OMP_NUM_THREADS=1 python benchmarks/real_model_generation.py --profile --batch 16 --threads 1
    OMP_NUM_THREADS=1 python benchmarks/real_model_generation.py --batch 16 --count 32 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "gsm8k.test.jsonl"
INSTRUCTION = "Put the final answer in \\boxed{}."


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--count", type=int, default=32, help="prompts sampled (one sample each)")
    parser.add_argument("--profile", action="store_true")
    return parser.parse_args()


def gsm8k_prompts(count: int) -> list[list[dict[str, str]]]:
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()[:count]]
    return [[{"role": "user", "content": f"{row['question']}\n{INSTRUCTION}"}] for row in rows]


def seconds_per_call(function: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def profile(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cipo.builtin_models import resolve_model
    from cipo.eval.generation import _top_p_filter, _top_p_filter_sorted

    path = resolve_model(args.model)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).eval()
    # Real chat prompts (not random ids): the next-token distributions, hence the nucleus sizes, are the model's.
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = [tokenizer.apply_chat_template(r, tokenize=False, add_generation_prompt=True) for r in gsm8k_prompts(args.batch)]
    tokenizer.padding_side = "left"
    prompt = tokenizer(texts, return_tensors="pt", padding=True).input_ids
    with torch.inference_mode():
        start = time.perf_counter()
        output = model(prompt, use_cache=True)
        prefill = time.perf_counter() - start
        cache = output.past_key_values
        logits = output.logits[:, -1].float()

        def decode_step() -> None:
            nonlocal cache
            step = model(logits.argmax(-1, keepdim=True), past_key_values=cache, use_cache=True)
            cache = step.past_key_values

        decode = seconds_per_call(decode_step, 8)
        scaled = logits / 0.6
        timings = {
            "prefill_s": prefill,
            "decode_step_s": decode,
            "top_p_sorted_s": seconds_per_call(lambda: _top_p_filter_sorted(scaled, 0.95), 4),
            "top_p_candidates_s": seconds_per_call(lambda: _top_p_filter(scaled, 0.95), 4),
        }
    print(json.dumps({"batch": args.batch, "threads": args.threads, "dtype": args.dtype,
                      **{k: round(v, 4) for k, v in timings.items()}}))


def throughput(args: argparse.Namespace) -> None:
    from cipo.eval.generation import GenerationRequest, SamplingConfig, load_generator

    generator = load_generator(
        args.model, SamplingConfig(max_new_tokens=args.max_new_tokens), backend="transformers", dtype=args.dtype
    )
    requests = [GenerationRequest(prompt, index) for index, prompt in enumerate(gsm8k_prompts(args.count))]
    start, tokens = time.perf_counter(), 0
    for first in range(0, len(requests), args.batch):
        tokens += sum(g.num_tokens for g in generator.generate(requests[first : first + args.batch]))
    elapsed = time.perf_counter() - start
    print(json.dumps({"batch": args.batch, "threads": args.threads, "dtype": args.dtype,
                      "max_new_tokens": args.max_new_tokens, "samples": len(requests), "seconds": round(elapsed, 1),
                      "samples_per_s": round(len(requests) / elapsed, 3), "tokens_per_s": round(tokens / elapsed, 1)}))


def main() -> None:
    import torch

    args = parse_args()
    torch.set_num_threads(args.threads)
    profile(args) if args.profile else throughput(args)


if __name__ == "__main__":
    main()
