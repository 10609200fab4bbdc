"""Throughput of the math verifier (cipo.rewards.math) next to raw math-verify, on the same completions.

"ours" is a MathVerifier (fast path, worker processes with hard deadlines, per-batch de-duplication, result
cache) scoring TRL-sized batches. "raw" is single-process math-verify as its README shows it:
``verify(parse(gold), parse(completion))`` per completion, with its default settings and SIGALRM timeouts, no
cache. Before the clock runs, both are brought to the state of a running training job (which starts its workers
once, and whose first steps fill math-verify's per-process parser caches): ours starts its workers and warms each
with ``MathVerifier.warm_up()``, raw scores the same warm-up corpus (cipo.rewards.math_warmup) in this process.
Ours and raw take turns, one batch each, so that both see the same machine load; "ratio" compares their wall
times, "cpu ratio" their CPU seconds (ours: this process and its workers; left out when a worker was killed, as
its CPU count goes with it), which does not depend on how many cores the workers got. "no worker": the share of completions ours settles in this process (fast path, empty texts,
result cache), "raw time": the share of raw's time spent on those same completions. Workloads:

- mix:         GRPO-like groups of 8 completions per gold, each with its own reasoning prose: correct boxed
               answers, "The final answer is $X$. I hope it is correct.", equivalent rewrites, wrong answers,
               thinking blocks (some with the answer only inside them), a few hedges ("X or Y"), completions
               with no conclusion;
- symbolic:    the same kinds of completions for non-integer golds only (fractions, roots, sets, intervals...):
               nearly everything needs math-verify;
- adversarial: runaway generations, unclosed boxes, huge powers and random bytes mixed into the mix.

Golds come from MATH-500 when the shared benchmark folder is present, else from a small synthetic generator.

    python benchmarks/math_verifier_throughput.py --n 400 --workers 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path

from cipo.rewards.math import MathVerifier
from cipo.rewards.math_text import gold_as_latex
from cipo.rewards.math_warmup import warm_up_jobs

MATH500 = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "math500.test.jsonl"
INTEGER = re.compile(r"-?\d+")

Pairs = tuple[list[str], list[str]]  # (completions, golds)


def load_golds(seed: int) -> tuple[list[str], str]:
    if MATH500.exists():
        rows = [json.loads(line) for line in MATH500.read_text().splitlines() if line.strip()]
        return [row["answer"] for row in rows], "MATH-500"
    return synthetic_golds(random.Random(seed), count=500), "synthetic"


def synthetic_golds(rng: random.Random, count: int) -> list[str]:
    makers = [
        lambda: str(rng.randint(-50, 2000)),
        lambda: str(rng.randint(1, 99)),
        lambda: f"\\frac{{{rng.randint(1, 40)}}}{{{rng.randint(41, 90)}}}",
        lambda: f"{rng.randint(2, 9)}\\sqrt{{{rng.choice([2, 3, 5, 6, 7])}}}",
        lambda: f"({rng.randint(-9, 0)},{rng.randint(1, 9)})",
    ]
    return [rng.choice(makers)() for _ in range(count)]


def reasoning(rng: random.Random) -> str:
    """A few sentences of varied working: every completion's text is different, as in a real rollout."""
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
    sentences = [
        f"First, note that ${a} + {b} = {a + b}$.",
        f"Multiplying by {c} gives ${c} \\cdot {a} = {c * a}$.",
        f"Let $x$ be the unknown, so $x^2 - {a}x + {b} = 0$ has discriminant ${a * a - 4 * b}$.",
        f"We check the case $n = {c}$ separately.",
        f"The remaining {b} cases are symmetric, so we only count one of them.",
        f"Dividing, $\\frac{{{a * c}}}{{{c}}} = {a}$.",
    ]
    return " ".join(rng.sample(sentences, rng.randint(2, 5)))


def equivalent_rewrite(gold: str) -> str:
    """The gold in another form only math-verify recognizes (integers: 2x/2; others: unchanged)."""
    return f"\\frac{{{2 * int(gold)}}}{{2}}" if INTEGER.fullmatch(gold) else gold


def completion(gold: str, wrong: str, rng: random.Random) -> str:
    draw = rng.random()
    working = reasoning(rng)
    if draw < 0.40:
        return f"{working}\nTherefore the answer is $\\boxed{{{gold}}}$."
    if draw < 0.50:
        return f"{working}\nFinal Answer: The final answer is ${gold}$. I hope it is correct."
    if draw < 0.60:
        return f"{working}\nSo we get \\boxed{{{equivalent_rewrite(gold)}}}."
    if draw < 0.85:
        return f"{working}\nHence the answer is \\boxed{{{wrong}}}."
    if draw < 0.90:
        return f"<think>{working} Maybe {wrong}? Let me recheck.</think>\nThe answer is $\\boxed{{{gold}}}$."
    if draw < 0.92:  # the answer only inside the reasoning: the output was cut before the conclusion
        return f"<think>{working} So it is \\boxed{{{gold}}}.</think>\nTo conclude,"
    if draw < 0.94:  # a hedge
        return f"{working}\nThe answer is {gold} or {wrong}"
    return f"{working} I am not sure how to finish this problem"


def mixed_pairs(golds: Sequence[str], n: int, rng: random.Random, group_size: int = 8) -> Pairs:
    """Groups of completions per gold, as GRPO samples them; wrong answers are other rows' golds."""
    completions, answers = [], []
    while len(completions) < n:
        gold = rng.choice(golds)
        for _ in range(group_size):
            completions.append(completion(gold, rng.choice(golds), rng))
            answers.append(gold)
    return completions[:n], answers[:n]


def symbolic_pairs(golds: Sequence[str], n: int, rng: random.Random) -> Pairs:
    symbolic = [gold for gold in golds if not INTEGER.fullmatch(gold)] or list(golds)
    return mixed_pairs(symbolic, n, rng)


def adversarial_pairs(golds: Sequence[str], n: int, rng: random.Random) -> Pairs:
    completions, answers = mixed_pairs(golds, n, rng)
    nasty = [
        "\\boxed{" * 3000 + "1",
        "the answer is " + "9" * 20_000,
        "\\boxed{" + "x^{" * 200 + "2" + "}" * 200 + "}",
        "\\boxed{10^{10^{10^{10}}}}",
        "\\boxed{" + "(x+1)" * 300 + "}",
        bytes(rng.randrange(256) for _ in range(4000)).decode("utf-8", errors="replace"),
    ]
    for index in range(0, n, 10):
        completions[index] = nasty[(index // 10) % len(nasty)]
    return completions, answers


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used; 0.0 where /proc cannot tell (not Linux, gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_cpu_s(verifier: MathVerifier) -> dict[int, float]:
    return {pid: process_cpu_s(pid) for pid in verifier.pool.worker_pids()}


class Timing:
    """Wall and CPU seconds of ours and raw, accumulated batch by batch (alternating, so both see the same load)."""

    def __init__(self) -> None:
        self.ours_wall = self.ours_cpu = self.raw_wall = self.raw_cpu = 0.0
        self.raw_item_s: list[float] = []

    def ours(self, verifier: MathVerifier, completions: list[str], golds: list[str]) -> list[float]:
        workers_before, wall, cpu = workers_cpu_s(verifier), time.perf_counter(), time.process_time()
        scores = verifier.score(completions, golds)
        self.ours_wall += time.perf_counter() - wall
        workers_after = workers_cpu_s(verifier)
        workers = sum(after - workers_before.get(pid, 0.0) for pid, after in workers_after.items())
        self.ours_cpu += time.process_time() - cpu + workers
        return scores

    def raw(self, completions: list[str], golds: list[str]) -> list[float]:
        wall, cpu = time.perf_counter(), time.process_time()
        scores, seconds = raw_scores((completions, golds))
        self.raw_wall += time.perf_counter() - wall
        self.raw_cpu += time.process_time() - cpu
        self.raw_item_s += seconds
        return scores


def score_both(
    verifier: MathVerifier, pairs: Pairs, batch_size: int
) -> tuple[list[float], list[float], Timing]:
    """Ours and raw on the same TRL-sized batches, one batch each in turn."""
    completions, golds = pairs
    timing, ours, raw = Timing(), [], []
    for start in range(0, len(completions), batch_size):
        batch = completions[start : start + batch_size], golds[start : start + batch_size]
        ours += timing.ours(verifier, *batch)
        raw += timing.raw(*batch)
    return ours, raw, timing


def raw_score(text: str, gold: str) -> float:
    from math_verify import parse, verify

    try:
        return 1.0 if verify(parse(gold_as_latex(gold)), parse(text)) else 0.0
    except Exception:  # math-verify's own timeouts raise on some paths; the item scores 0
        return 0.0


def raw_scores(pairs: Pairs) -> tuple[list[float], list[float]]:
    """Raw math-verify's scores, and the seconds each item took."""
    scores, seconds = [], []
    for text, gold in zip(*pairs, strict=True):
        started = time.perf_counter()
        scores.append(raw_score(text, gold))
        seconds.append(time.perf_counter() - started)
    return scores, seconds


def why_they_differ(pairs: Pairs, ours: list[float], raw: list[float]) -> str:
    """Disagreements by cause: a thinking block (ours grades what follows it), or anything else (hedges...)."""
    thinking = other = 0
    for text, score, raw_score_ in zip(pairs[0], ours, raw, strict=True):
        if score != raw_score_:
            thinking += "<think>" in text
            other += "<think>" not in text
    return f"{thinking} think, {other} other"


def warm_up_pairs() -> Pairs:
    """The verifier's warm-up corpus as (completions, golds), for raw math-verify."""
    jobs = warm_up_jobs()
    return [text for _, text in jobs], [golds[0] for golds, _ in jobs]


WORKLOADS = {"mix": mixed_pairs, "symbolic": symbolic_pairs, "adversarial": adversarial_pairs}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=400, help="completions per workload (default 400)")
    parser.add_argument("--workers", type=int, default=2, help="math-verify worker processes (default 2)")
    parser.add_argument("--batch", type=int, default=128, help="completions per score() call (default 128)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per completion in ours (default 5)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument(
        "--ll-only", action="store_true", help="ours without two-stage parsing (latex2sympy's LL mode only)"
    )
    args = parser.parse_args()
    unknown = sorted(set(args.workloads.split(",")) - set(WORKLOADS))
    if unknown:
        parser.error(
            f"--workloads: unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
        )
    return args


def warm_up_both(verifier: MathVerifier) -> None:
    warm_up = warm_up_pairs()
    started = time.perf_counter()
    verifier.warm_up()
    seconds = time.perf_counter() - started
    print(f"ours: worker pool start + warm-up ({len(warm_up[0])} jobs each): {seconds:.2f} s")
    started = time.perf_counter()
    raw_scores(warm_up)
    seconds = time.perf_counter() - started
    print(f"raw: warm-up ({len(warm_up[0])} jobs): {seconds:.2f} s (neither timed below)\n")


HEADER = (
    f"{'workload':<12} {'ours/s':>8} {'raw/s':>8} {'ratio':>6} {'cpu ratio':>9} {'no worker':>10} "
    f"{'raw time':>9} {'ours=1':>7} {'raw=1':>6} {'differ':>7} {'why':>18} {'timeouts':>8} {'slowest raw':>12}"
)


def report(name: str, pairs: Pairs, verifier: MathVerifier, batch_size: int) -> str:
    """One table row: both scored, timed, compared; "no worker": completions ours settles in this process."""
    settled = [verifier.settles_without_worker(text, gold) for text, gold in zip(*pairs, strict=True)]
    timeouts_before = verifier.pool.timeouts
    ours, raw, timing = score_both(verifier, pairs, batch_size)
    timeouts = verifier.pool.timeouts - timeouts_before
    # A worker killed at its deadline takes its CPU count with it: no CPU ratio then.
    cpu_ratio = "-" if timeouts else f"{timing.raw_cpu / max(timing.ours_cpu, 1e-9):.1f}x"
    n = len(pairs[0])
    raw_share = sum(s for s, done in zip(timing.raw_item_s, settled, strict=True) if done) / sum(
        timing.raw_item_s
    )
    return (
        f"{name:<12} {n / timing.ours_wall:>8.1f} {n / timing.raw_wall:>8.1f} "
        f"{timing.raw_wall / timing.ours_wall:>5.1f}x {cpu_ratio:>9} {sum(settled) / n:>10.0%} {raw_share:>9.0%} "
        f"{sum(ours):>7.0f} {sum(raw):>6.0f} {sum(a != b for a, b in zip(ours, raw, strict=True)):>7} "
        f"{why_they_differ(pairs, ours, raw):>18} {timeouts:>8} {max(timing.raw_item_s):>11.2f}s"
    )


def main() -> None:
    args = parse_args()
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # raw math-verify logs every failed parse
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}")
    golds, source = load_golds(args.seed)
    verifier = MathVerifier(
        timeout_s=args.timeout, num_workers=args.workers, two_stage_parsing=not args.ll_only
    )
    parsing = "LL only" if args.ll_only else "two-stage"
    print(
        f"golds: {source} ({len(golds)}), n={args.n}, workers={args.workers}, batch={args.batch}, {parsing}"
    )
    try:
        warm_up_both(verifier)
        print(HEADER)
        for index, (name, make_pairs) in enumerate(WORKLOADS.items()):
            if name in args.workloads.split(","):
                pairs = make_pairs(golds, args.n, random.Random(args.seed + index))
                print(report(name, pairs, verifier, args.batch))
    finally:
        verifier.close()
    print(f"\nload average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
