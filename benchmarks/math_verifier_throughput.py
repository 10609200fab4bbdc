"""Throughput of the math verifier (cipo.rewards.math): answers scored per second.

Three workloads, each scored in TRL-sized batches by a fresh MathVerifier:

- fast path:   pairs the fast path settles (exact gold, or a different integer): no worker is ever used;
- math-verify: every pair goes to the workers (fast path off): half correct, half another row's gold;
- mix:         a GRPO-like mix: exact answers, equivalent rewrites, wrong answers, missing answers.

"cold" is the first pass of a fresh verifier (it includes starting the worker processes), "warm" a second pass
over different pairs drawn from the same golds. Golds come from MATH-500 when the shared benchmark folder is
present, else from a small synthetic generator.

    python benchmarks/math_verifier_throughput.py --n 1000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

from cipo.rewards.math import MathVerifier, extract_answer, fast_compare, gold_candidates

MATH500 = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "math500.test.jsonl"

Pairs = tuple[list[str], list[str]]  # (completions, golds)


def load_golds(seed: int) -> tuple[list[str], str]:
    if MATH500.exists():
        rows = [json.loads(line) for line in MATH500.read_text().splitlines() if line.strip()]
        return [row["answer"] for row in rows], "MATH-500"
    return synthetic_golds(random.Random(seed), count=500), "synthetic"


def synthetic_golds(rng: random.Random, count: int) -> list[str]:
    makers = [
        lambda: str(rng.randint(-50, 2000)),
        lambda: f"\\frac{{{rng.randint(1, 40)}}}{{{rng.randint(41, 90)}}}",
        lambda: f"{rng.randint(2, 9)}\\sqrt{{{rng.choice([2, 3, 5, 6, 7])}}}",
        lambda: f"x^2+{rng.randint(1, 9)}x+{rng.randint(1, 9)}",
        lambda: f"({rng.randint(-9, 0)},{rng.randint(1, 9)})",
    ]
    return [rng.choice(makers)() for _ in range(count)]


def as_completion(answer: str) -> str:
    return f"Let me work through this carefully.\nSo the final result is \\boxed{{{answer}}}."


def equivalent_rewrite(gold: str) -> str | None:
    """A correct answer in another form that only math-verify recognizes (integers only: x = 2x/2)."""
    if gold.lstrip("-").isdigit():
        return f"\\frac{{{2 * int(gold)}}}{{2}}"
    return None


def fast_path_pairs(golds: Sequence[str], n: int, rng: random.Random) -> Pairs:
    integer_golds = [gold for gold in golds if gold.lstrip("-").isdigit()]
    completions, answers = [], []
    while len(completions) < n:
        gold = rng.choice(golds)
        wrong = rng.choice(integer_golds) if gold.lstrip("-").isdigit() else gold
        prediction = gold if rng.random() < 0.5 else wrong
        if fast_compare(gold_candidates(gold), prediction) is not None:
            completions.append(as_completion(prediction))
            answers.append(gold)
    return completions, answers


def math_verify_pairs(golds: Sequence[str], n: int, rng: random.Random) -> Pairs:
    completions, answers = [], []
    for _ in range(n):
        gold = rng.choice(golds)
        prediction = gold if rng.random() < 0.5 else rng.choice(golds)
        completions.append(as_completion(prediction))
        answers.append(gold)
    return completions, answers


def mixed_pairs(golds: Sequence[str], n: int, rng: random.Random, group_size: int = 8) -> Pairs:
    """Groups of completions per prompt, as GRPO samples them."""
    completions, answers = [], []
    while len(completions) < n:
        gold = rng.choice(golds)
        for _ in range(group_size):
            draw = rng.random()
            if draw < 0.45:
                completion = as_completion(gold)
            elif draw < 0.60:
                completion = as_completion(equivalent_rewrite(gold) or gold)
            elif draw < 0.90:
                completion = as_completion(rng.choice(golds))
            else:
                completion = "I am not sure how to finish this problem"
            completions.append(completion)
            answers.append(gold)
    return completions[:n], answers[:n]


def answers_per_second(verifier: MathVerifier, pairs: Pairs, batch_size: int) -> float:
    completions, golds = pairs
    started = time.perf_counter()
    for start in range(0, len(completions), batch_size):
        verifier.score(completions[start : start + batch_size], golds[start : start + batch_size])
    return len(completions) / (time.perf_counter() - started)


def share_needing_math_verify(pairs: Pairs, use_fast_path: bool) -> float:
    """Share of pairs the fast path cannot settle (before de-duplication and caching)."""
    if not use_fast_path:
        return 1.0
    completions, golds = pairs
    unsettled = 0
    for completion, gold in zip(completions, golds, strict=True):
        prediction = extract_answer(completion)
        unsettled += bool(prediction) and fast_compare(gold_candidates(gold), prediction) is None
    return unsettled / len(completions)


def pool_start_seconds(workers: int) -> float:
    """Time for a fresh verifier to start its workers and answer one math-verify job."""
    verifier = MathVerifier(num_workers=workers)
    try:
        started = time.perf_counter()
        verifier.score([as_completion("1+x")], ["x+1"])
        return time.perf_counter() - started
    finally:
        verifier.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="answers per workload and pass (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help="math-verify worker processes (default 2)")
    parser.add_argument("--batch", type=int, default=128, help="completions per score() call (default 128)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per math-verify job (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    golds, source = load_golds(args.seed)
    workloads = {
        "fast path": (fast_path_pairs, True),
        "math-verify": (math_verify_pairs, False),
        "mix": (mixed_pairs, True),
    }
    print(f"golds: {source} ({len(golds)}), n={args.n}, workers={args.workers}, batch={args.batch}")
    print(f"worker pool start + first answer: {pool_start_seconds(args.workers):.2f} s\n")
    print(
        f"{'workload':<12} {'cold answers/s':>15} {'warm answers/s':>15} {'needs math-verify':>17} {'timeouts':>9}"
    )
    for name, (make_pairs, use_fast_path) in workloads.items():
        cold_pairs = make_pairs(golds, args.n, random.Random(args.seed))
        warm_pairs = make_pairs(golds, args.n, random.Random(args.seed + 1))
        verifier = MathVerifier(timeout_s=args.timeout, num_workers=args.workers, use_fast_path=use_fast_path)
        try:
            cold = answers_per_second(verifier, cold_pairs, args.batch)
            warm = answers_per_second(verifier, warm_pairs, args.batch)
        finally:
            verifier.close()
        needs_math_verify = share_needing_math_verify(warm_pairs, use_fast_path)
        print(
            f"{name:<12} {cold:>15,.0f} {warm:>15,.0f} {needs_math_verify:>17.0%} {verifier.pool.timeouts:>9}"
        )


if __name__ == "__main__":
    main()
