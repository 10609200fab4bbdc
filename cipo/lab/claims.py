"""The claims table of a lab report: each claim of the paper as a paired CIPO-minus-baseline difference, with its
hierarchical-bootstrap interval and the verdict that interval implies (``cipo.lab.stats``), from metrics.json alone.

C1: CIPO beats GRPO in pass@1, at the same optimizer steps and at equal generated tokens. C2: CIPO's advantage
grows with k, read as (CIPO - GRPO) at the largest k minus at k = 1. C3: CIPO corrects better: more wrong->right,
fewer right->wrong, a larger Acc@t2 - Acc@t1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cipo.eval.metrics import pass_at_k_per_problem
from cipo.lab.stats import Difference, PairedSeed, Side, paired_difference, verdict

# A metric turns one model's evaluation (metrics.json form) into a per-problem Side; None when it is not stored.
Metric = Callable[[dict, "EvalShape"], Side | None]
LARGEST_K = 64


@dataclass(frozen=True)
class EvalShape:
    samples: int  # n: samples per problem (pass@k)
    attempts: int  # reviewed turn-1 samples per problem

    @classmethod
    def of(cls, metrics: dict) -> EvalShape:
        evaluation = metrics["config"]["eval"]
        samples = evaluation["num_samples"]
        return cls(samples, min(evaluation["correction_attempts"], samples))

    @property
    def largest_k(self) -> int:
        return min(LARGEST_K, self.samples)


def pass_at(k: int | None) -> Metric:
    """pass@k per problem; ``None``: the largest k the samples allow (up to 64)."""

    def metric(evaluation: dict, shape: EvalShape) -> Side:
        return Side(pass_at_k_per_problem(evaluation["correct_counts"], shape.samples, k or shape.largest_k))

    return metric


def pass_gain(evaluation: dict, shape: EvalShape) -> Side:
    """pass@K - pass@1 per problem (K the largest k): the difference of two sides' gains is C2's statistic."""
    top = pass_at_k_per_problem(evaluation["correct_counts"], shape.samples, shape.largest_k)
    first = pass_at_k_per_problem(evaluation["correct_counts"], shape.samples, 1)
    return Side([a - b for a, b in zip(top, first, strict=True)])


def _correction_side(column: Callable[[list[int], int], tuple[float, float]]) -> Metric:
    def metric(evaluation: dict, shape: EvalShape) -> Side | None:
        rows = evaluation.get("correction_counts")  # absent in reports written before the claims table
        if rows is None:
            return None
        pairs = [column(row, shape.attempts) for row in rows]
        return Side([p[0] for p in pairs], [p[1] for p in pairs])

    return metric


# correction_counts rows: [right at t1, right at t2, wrong->right, right->wrong] out of ``attempts``.
wrong_to_right = _correction_side(lambda row, m: (row[2], m - row[0]))
right_to_wrong = _correction_side(lambda row, m: (row[3], row[0]))
turn_gain = _correction_side(lambda row, m: (row[1] - row[0], m))


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    first: str  # model key of a run record ("cipo", "grpo", ...; "ablation:<variant>")
    second: str
    metric: Metric
    metric_label: str
    direction: int  # +1: the claim says first > second; -1: first < second


def claims(shape: EvalShape) -> list[Claim]:
    k = shape.largest_k
    return [
        Claim("C1", "CIPO beats GRPO in pass@1 (same steps)", "cipo", "grpo", pass_at(1), "pass@1", 1),
        Claim("C1", "CIPO beats GRPO in pass@1 (equal generated tokens)", "cipo", "grpo_equal_tokens", pass_at(1),
              "pass@1", 1),
        Claim("C2", f"CIPO's gain over GRPO grows with k (k = {k} vs k = 1)", "cipo", "grpo", pass_gain,
              f"(CIPO − GRPO)@{k} − (CIPO − GRPO)@1", 1),
        Claim("C3", "CIPO fixes more wrong answers", "cipo", "grpo", wrong_to_right, "wrong→right", 1),
        Claim("C3", "CIPO breaks fewer right answers", "cipo", "grpo", right_to_wrong, "right→wrong", -1),
        Claim("C3", "CIPO gains more from a second turn", "cipo", "grpo", turn_gain, "Acc@t2 − Acc@t1", 1),
    ]


def model_eval(run: dict, key: str) -> dict | None:
    if key.startswith("ablation:"):
        record = run.get("ablations", {}).get(key.removeprefix("ablation:"))
    else:
        record = run.get(key)
    return None if record is None else record["eval"]


def compare(metrics: dict, first: str, second: str, metric: Metric) -> dict | None:
    """The paired difference first - second over every seed that has both models (None: not stored)."""
    shape = EvalShape.of(metrics)
    pairs = []
    for run in metrics["runs"]:
        a, b = model_eval(run, first), model_eval(run, second)
        if a is None or b is None:
            continue
        side_a, side_b = metric(a, shape), metric(b, shape)
        if side_a is None or side_b is None:
            return None
        pairs.append(PairedSeed(side_a, side_b))
    if not pairs:
        return None
    return paired_difference(pairs).to_dict()


def claims_table(metrics: dict) -> list[dict]:
    """One row per claim with data: the difference, its interval and the verdict (metrics.json ``claims``)."""
    rows = []
    for claim in claims(EvalShape.of(metrics)):
        difference = compare(metrics, claim.first, claim.second, claim.metric)
        if difference is None:
            continue
        rows.append({"claim": claim.name, "statement": claim.statement, "metric": claim.metric_label,
                     "first": claim.first, "second": claim.second, "direction": claim.direction, **difference,
                     "verdict": verdict_of(difference, claim.direction)})
    return rows


def verdict_of(difference: dict, direction: int) -> str:
    low, high = difference["ci95"]
    return verdict(Difference(difference["mean"], low, high, difference["seeds"], []), direction)


def points(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "–"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def interval(difference: dict) -> str:
    low, high = difference["ci95"]
    return "–" if low is None else f"{points(low)} to {points(high)}"


def render_claims(rows: list[dict]) -> str:
    header = "| Claim | Statement | Statistic (CIPO − baseline) | Mean | 95% interval | Seeds | Verdict |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['claim']} | {row['statement']} | {row['metric']} | {points(row['mean'])} | "
                     f"{interval(row)} | {row['seeds']} | **{row['verdict']}** |")
    return "\n".join(lines)
