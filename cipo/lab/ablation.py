"""``cipo lab --ablate``: CIPO with one part switched off at a time, from the same warm start, seeds and data, and
the table of each variant's difference to full CIPO with the claims' intervals (``cipo.lab.stats``).

"No corrections" is CIPO without correction rows, i.e. the same-step GRPO run the lab trains anyway; the other
variants are extra CIPO runs whose ``RLConfig`` differs in the fields below (``CIPOConfig`` switches).
"""

from __future__ import annotations

import dataclasses

from cipo.lab.claims import (
    EvalShape,
    compare,
    interval,
    pass_at,
    points,
    turn_gain,
    verdict_of,
    wrong_to_right,
)
from cipo.lab.compare import RLConfig

GRPO_VARIANT = "no corrections (GRPO)"
# Variant -> the RLConfig fields it changes.
VARIANTS: dict[str, dict[str, object]] = {
    "fixed replay ratio": {"adaptive_replay": False},
    # Correct anchors are then chosen only when too few wrong rollouts are left to fill the anchor budget.
    "no correct anchors": {"replay_ratio": 0.0, "adaptive_replay": False, "replay_ratio_bounds": (0.0, 0.75)},
    "no risk-averse shaping": {"risk_penalty": 0.0},
    "no difficulty band": {"difficulty_band": (0.0, 1.0)},
    "correction_weight 0.5": {"correction_weight": 0.5},
    "correction_weight 2": {"correction_weight": 2.0},
}


def variant_config(config: RLConfig, name: str) -> RLConfig:
    if name not in VARIANTS:
        raise ValueError(f"unknown ablation {name!r}; ablations: {', '.join(VARIANTS)}")
    return dataclasses.replace(config, **VARIANTS[name])


def _model(name: str) -> str:
    return "grpo" if name == GRPO_VARIANT else f"ablation:{name}"


def ablation_table(metrics: dict) -> list[dict]:
    """Per variant: pass@1, pass@K, wrong->right and Acc@t2 - Acc@t1 of the variant minus full CIPO, with
    intervals, and whether the switched-off part helps pass@1 (full CIPO above the variant: direction -1)."""
    names = [GRPO_VARIANT, *[n for n in VARIANTS if any(n in run.get("ablations", {}) for run in metrics["runs"])]]
    if len(names) == 1:
        return []
    shape = EvalShape.of(metrics)
    columns = {"pass@1": pass_at(1), f"pass@{shape.largest_k}": pass_at(None), "wrong→right": wrong_to_right,
               "Acc@t2 − Acc@t1": turn_gain}
    rows = []
    for name in names:
        differences = {label: compare(metrics, _model(name), "cipo", metric) for label, metric in columns.items()}
        main = differences["pass@1"]
        rows.append({"variant": name, "changes": VARIANTS.get(name, {"use_correction": False}),
                     "differences": differences,
                     "part_helps_pass_at_1": verdict_of(main, -1) if main else "undecided"})
    return rows


def render_ablation(rows: list[dict]) -> str:
    labels = list(rows[0]["differences"])
    lines = ["| Variant (vs full CIPO) | " + " | ".join(f"Δ {label} (95% interval)" for label in labels)
             + " | Seeds | Part helps pass@1 |", "|---|" + "---|" * (len(labels) + 2)]
    for row in rows:
        cells = [f"{points(d['mean'])} ({interval(d)})" if d else "–" for d in row["differences"].values()]
        seeds = next((d["seeds"] for d in row["differences"].values() if d), 0)
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + f" | {seeds} | **{row['part_helps_pass_at_1']}** |")
    return "\n".join(lines)
