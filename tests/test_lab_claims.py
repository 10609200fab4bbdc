"""The claims and ablation tables from a synthetic metrics.json: verdicts follow the data, directions are right,
and the report renders both tables."""

from __future__ import annotations

import random

from cipo.lab.ablation import GRPO_VARIANT, VARIANTS, ablation_table, render_ablation, variant_config
from cipo.lab.claims import claims_table, render_claims
from cipo.lab.compare import RLConfig
from cipo.lab.evaluate import problem_correction_counts
from cipo.lab.report import claims_section

SAMPLES, ATTEMPTS, PROBLEMS = 64, 8, 60


def evaluation(rng: random.Random, rate: float, fix: float, brk: float, hard_share: float = 0.0) -> dict:
    """Per-problem counts of a model that solves each sample with chance ``rate`` (0 on a hard share of problems),
    fixes wrong turn-1 answers with chance ``fix`` and breaks right ones with chance ``brk``."""
    counts, rows = [], []
    for index in range(PROBLEMS):
        p = 0.0 if index < hard_share * PROBLEMS else rate
        counts.append(sum(rng.random() < p for _ in range(SAMPLES)))
        right = sum(rng.random() < p for _ in range(ATTEMPTS))
        fixed = sum(rng.random() < fix for _ in range(ATTEMPTS - right))
        broken = sum(rng.random() < brk for _ in range(right))
        rows.append([right, right - broken + fixed, fixed, broken])
    return {"correct_counts": counts, "correction_counts": rows}


def metrics(seeds: int, cipo: dict, grpo: dict, ablations: dict | None = None) -> dict:
    runs = []
    for seed in range(seeds):
        rng = random.Random(seed)
        run = {"seed": seed, "cipo": {"eval": evaluation(rng, **cipo)}, "grpo": {"eval": evaluation(rng, **grpo)},
               "grpo_equal_tokens": {"eval": evaluation(rng, **cipo)}}
        if ablations:
            run["ablations"] = {name: {"eval": evaluation(rng, **kw)} for name, kw in ablations.items()}
        runs.append(run)
    return {"config": {"eval": {"num_samples": SAMPLES, "correction_attempts": ATTEMPTS}}, "runs": runs}


def by_metric(rows: list[dict]) -> dict[tuple[str, str], dict]:
    return {(row["second"], row["metric"]): row for row in rows}


def test_clear_effects_are_supported_and_nulls_undecided():
    data = metrics(5, cipo={"rate": 0.6, "fix": 0.7, "brk": 0.05}, grpo={"rate": 0.4, "fix": 0.3, "brk": 0.3})
    rows = by_metric(claims_table(data))
    assert rows[("grpo", "pass@1")]["verdict"] == "supported"
    assert 0.15 < rows[("grpo", "pass@1")]["mean"] < 0.25
    assert rows[("grpo_equal_tokens", "pass@1")]["verdict"] == "undecided"  # same model law: a null
    assert rows[("grpo", "wrong→right")]["verdict"] == "supported"
    assert rows[("grpo", "right→wrong")]["mean"] < 0 and rows[("grpo", "right→wrong")]["verdict"] == "supported"
    assert rows[("grpo", "Acc@t2 − Acc@t1")]["verdict"] == "supported"
    # Both models reach pass@64 = 1 on every problem: CIPO's pass@1 lead does not grow with k, it vanishes.
    assert rows[("grpo", "(CIPO − GRPO)@64 − (CIPO − GRPO)@1")]["verdict"] == "not supported"


def test_c2_is_supported_when_cipo_reaches_problems_grpo_cannot():
    data = metrics(5, cipo={"rate": 0.3, "fix": 0.5, "brk": 0.1},
                   grpo={"rate": 0.3, "fix": 0.5, "brk": 0.1, "hard_share": 0.3})
    rows = by_metric(claims_table(data))
    c2 = rows[("grpo", "(CIPO − GRPO)@64 − (CIPO − GRPO)@1")]
    assert c2["verdict"] == "supported" and c2["mean"] > 0.1


def test_one_seed_gives_intervals_but_no_verdict():
    data = metrics(1, cipo={"rate": 0.9, "fix": 0.9, "brk": 0.0}, grpo={"rate": 0.1, "fix": 0.1, "brk": 0.9})
    rows = claims_table(data)
    assert all(row["verdict"] == "undecided" and row["seeds"] == 1 for row in rows)
    assert rows[0]["ci95"][0] > 0
    assert "| C1 |" in render_claims(rows)


def test_reports_without_correction_counts_skip_c3():
    data = metrics(3, cipo={"rate": 0.5, "fix": 0.5, "brk": 0.1}, grpo={"rate": 0.5, "fix": 0.5, "brk": 0.1})
    for run in data["runs"]:
        for key in ("cipo", "grpo", "grpo_equal_tokens"):
            del run[key]["eval"]["correction_counts"]
    assert {row["claim"] for row in claims_table(data)} == {"C1", "C2"}


def test_ablation_table_compares_each_variant_with_full_cipo():
    full = {"rate": 0.6, "fix": 0.6, "brk": 0.1}
    data = metrics(4, cipo=full, grpo={"rate": 0.4, "fix": 0.4, "brk": 0.2},
                   ablations={"no risk-averse shaping": full, "correction_weight 2": {**full, "rate": 0.7}})
    rows = {row["variant"]: row for row in ablation_table(data)}
    assert list(rows) == [GRPO_VARIANT, "no risk-averse shaping", "correction_weight 2"]
    assert rows[GRPO_VARIANT]["part_helps_pass_at_1"] == "supported"
    assert rows["no risk-averse shaping"]["part_helps_pass_at_1"] == "undecided"
    assert rows["correction_weight 2"]["part_helps_pass_at_1"] == "not supported"
    assert rows["correction_weight 2"]["differences"]["pass@1"]["mean"] > 0
    assert "| correction_weight 2 |" in render_ablation(list(rows.values()))
    assert ablation_table(metrics(2, cipo=full, grpo=full)) == []  # no --ablate: no table


def test_every_variant_is_a_valid_trainer_config():
    from cipo.lab.compare import cipo_config

    for name in VARIANTS:
        config = cipo_config(variant_config(RLConfig(), name), True, 2, 0, "/tmp/cipo-ablation-check")
        assert config.use_correction
    assert variant_config(RLConfig(), "no correct anchors").replay_ratio == 0.0
    assert variant_config(RLConfig(), "no difficulty band").difficulty_band == (0.0, 1.0)


def test_problem_correction_counts_splits_pairs_by_problem():
    pairs = [(True, True), (False, True), (True, False), (False, False), (False, True)]
    assert problem_correction_counts(pairs, [3, 2]) == [[2, 2, 1, 1], [0, 1, 1, 0]]


def test_report_has_the_claims_section():
    data = metrics(3, cipo={"rate": 0.6, "fix": 0.6, "brk": 0.1}, grpo={"rate": 0.4, "fix": 0.4, "brk": 0.2})
    page = "\n\n".join(claims_section(data))
    assert "## Claims" in page and "hierarchical bootstrap" in page and "| C2 |" in page
