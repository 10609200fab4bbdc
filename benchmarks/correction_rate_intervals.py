"""wrong->right and right->wrong of a finished ``cipo eval --correction`` run, with Wilson 95% intervals.

``cipo eval`` prints intervals for Acc@t1, Acc@t2 and their difference, not for the two rates; this reads the run's
samples.jsonl and prints each rate as a count over its pairs with a Wilson score interval.

    python benchmarks/correction_rate_intervals.py runs/real/gsm8k/samples.jsonl
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    if trials == 0:
        return math.nan, math.nan
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def turn_pairs(samples_file: Path) -> list[tuple[bool, bool]]:
    records = [json.loads(line) for line in samples_file.read_text().splitlines() if line.strip()]
    correct = {(r["id"], r["sample"], r["turn"]): bool(r["correct"]) for r in records}
    return [(ok, correct[(pid, s, 2)]) for (pid, s, turn), ok in correct.items() if turn == 1 and (pid, s, 2) in correct]


def main() -> None:
    pairs = turn_pairs(Path(sys.argv[1]))
    after_wrong = [second for first, second in pairs if not first]
    after_right = [second for first, second in pairs if first]
    for name, seconds, flipped in (("wrong->right", after_wrong, True), ("right->wrong", after_right, False)):
        count = sum(second == flipped for second in seconds)
        low, high = wilson_interval(count, len(seconds))
        print(f"{name}: {count}/{len(seconds)} = {100 * count / max(1, len(seconds)):.1f}% "
              f"[Wilson 95%: {100 * low:.1f}, {100 * high:.1f}]")


if __name__ == "__main__":
    main()
