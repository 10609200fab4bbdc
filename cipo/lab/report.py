"""``report.md``, ``metrics.json`` and the PNG plots of a lab run, from the metrics dictionary alone.

``write_report(run_dir, metrics)`` can be re-run on a saved ``metrics.json`` (``cipo lab --report-only DIR``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cipo.eval.metrics import bootstrap_ci, pass_at_k_per_problem  # noqa: E402
from cipo.lab.ablation import ablation_table, render_ablation  # noqa: E402
from cipo.lab.claims import claims_table, render_claims  # noqa: E402
from cipo.lab.stats import CONFIDENCE, MIN_SEEDS  # noqa: E402
from cipo.lab.task_api import get_task  # noqa: E402

MODELS = ("grpo", "cipo", "grpo_equal_tokens")
LABELS = {"warm": "Warm start", "grpo": "GRPO", "cipo": "CIPO", "grpo_equal_tokens": "GRPO, equal tokens"}
COLORS = {"warm": "#7f7f7f", "grpo": "#1f77b4", "cipo": "#d62728", "grpo_equal_tokens": "#2ca02c"}
CORRECTION_KEYS = {
    "correction/success_rate": "success rate",
    "correction/retention": "retention",
    "correction/fix_rate": "fix rate (wrong -> right)",
    "correction/break_rate": "break rate (right -> wrong)",
    "correction/replay_ratio": "replay ratio",
}


def write_report(run_dir: Path, metrics: dict) -> None:
    """Writes metrics.json (with the claims and ablation tables computed from the evaluations), plots, report.md."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = {**metrics, "claims": claims_table(metrics), "ablation": ablation_table(metrics)}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plot_training(run_dir / "training_reward.png", metrics)
    plot_corrections(run_dir / "correction_metrics.png", metrics)
    plot_pass_at_k(run_dir / "pass_at_k.png", metrics)
    plot_self_correction(run_dir / "self_correction.png", metrics)
    (run_dir / "report.md").write_text(render_markdown(metrics))


# -------------------------------------------------------------------------------------------- the numbers


def model_evals(metrics: dict, key: str) -> list[dict]:
    """The evaluation of one model for every seed (the warm start is evaluated once)."""
    if key == "warm":
        return [metrics["warm_start"]["eval"]]
    return [run[key]["eval"] for run in metrics["runs"] if key in run]


def present_models(metrics: dict) -> list[str]:
    return ["warm", *[key for key in MODELS if metrics["runs"] and key in metrics["runs"][0]]]


def columns(metrics: dict) -> list[tuple[str, Callable[[dict], float | None]]]:
    """The results table's score columns; pass@k up to the evaluation's sample count n (pass@1, pass@8, pass@n)."""
    n = metrics["config"]["eval"]["num_samples"]
    ks = sorted({k for k in (1, 8, n) if k <= n})
    return [
        ("Greedy", lambda e: e["greedy_accuracy"]),
        *[(f"pass@{k}", lambda e, k=k: e["pass_at_k"].get(str(k))) for k in ks],
        ("Acc@t1", lambda e: e["self_correction"]["acc_t1"]),
        ("Acc@t2", lambda e: e["self_correction"]["acc_t2"]),
        ("Δ(t1,t2)", lambda e: e["self_correction"]["delta"]),
        ("wrong→right", lambda e: e["self_correction"]["wrong_to_right"]),
        ("right→wrong", lambda e: e["self_correction"]["right_to_wrong"]),
    ]


def labels(metrics: dict) -> dict[str, str]:
    """Row and legend names; a lab that starts from a pretrained model calls its start the base model."""
    return {**LABELS, "warm": "Base model"} if metrics["warm_start"].get("pretrained") else LABELS


def mean_spread(values: Sequence[float | None], percent: bool = True) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    scale = 100 if percent else 1
    mean = statistics.fmean(values) * scale
    if len(set(values)) == 1:
        return f"{mean:.1f}" if percent else f"{mean:,.0f}"
    spread = statistics.stdev(values) * scale
    return f"{mean:.1f} ± {spread:.1f}" if percent else f"{mean:,.0f} ± {spread:,.0f}"


def training_cells(metrics: dict, key: str) -> tuple[str, str, str]:
    if key == "warm":
        warm = metrics["warm_start"]
        if warm.get("pretrained"):
            return "0 (pretrained)", "–", "–"
        return f"{metrics['config']['warm_start']['steps']} (SFT)", "–", f"{warm['train_seconds']:.0f}"
    runs = [run[key] for run in metrics["runs"]]
    steps = mean_spread([r["steps"] for r in runs], percent=False)
    tokens = mean_spread([r["generated_tokens"] for r in runs], percent=False)
    seconds = mean_spread([r["train_seconds"] for r in runs], percent=False)
    return steps, tokens, seconds


def results_table(metrics: dict) -> str:
    score_columns = columns(metrics)
    header = ["Model", "Steps", "Generated tokens", "Train s", *[name for name, _ in score_columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in present_models(metrics):
        evals = model_evals(metrics, key)
        cells = [labels(metrics)[key], *training_cells(metrics, key)]
        cells += [mean_spread([column(e) for e in evals]) for _, column in score_columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed_table(metrics: dict) -> str:
    n = str(metrics["config"]["eval"]["num_samples"])
    header = ["Seed", "Model", "Steps", "Generated tokens", "Greedy", "pass@1", f"pass@{n}", "Acc@t1", "Acc@t2"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in metrics["runs"]:
        for key in MODELS:
            if key not in run:
                continue
            e = run[key]["eval"]
            cells = [str(run["seed"]), labels(metrics)[key], str(run[key]["steps"]), f"{run[key]['generated_tokens']:,}",
                     *[f"{100 * v:.1f}" for v in (e["greedy_accuracy"], e["pass_at_k"]["1"], e["pass_at_k"][n],
                                                   e["self_correction"]["acc_t1"], e["self_correction"]["acc_t2"])]]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def level_table(metrics: dict) -> str:
    models = present_models(metrics)
    levels = list(model_evals(metrics, "warm")[0]["pass_at_1_by_level"])
    lines = ["| Level | " + " | ".join(labels(metrics)[m] for m in models) + " |", "|" + "---|" * (len(models) + 1)]
    for level in levels:
        cells = [mean_spread([e["pass_at_1_by_level"][level] for e in model_evals(metrics, m)]) for m in models]
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_difference(metrics: dict, first: str, second: str, k: int = 1) -> dict:
    """pass@k of ``first`` minus ``second`` per seed, with a paired bootstrap interval over test problems;
    ``second`` may be ``"warm"``, the model every seed starts from."""
    n = metrics["config"]["eval"]["num_samples"]
    out = []
    for run in metrics["runs"]:
        if first not in run or (second != "warm" and second not in run):
            continue
        second_eval = metrics["warm_start"]["eval"] if second == "warm" else run[second]["eval"]
        a = pass_at_k_per_problem(run[first]["eval"]["correct_counts"], n, k)
        b = pass_at_k_per_problem(second_eval["correct_counts"], n, k)
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        low, high = bootstrap_ci(diffs, seed=run["seed"])
        out.append({"seed": run["seed"], "difference": sum(diffs) / len(diffs), "ci95": [low, high]})
    return {"per_seed": out}


def describe_difference(name: str, comparison: dict) -> str:
    rows = comparison["per_seed"]
    if not rows:
        return ""
    parts = []
    for row in rows:
        low, high = row["ci95"]
        verdict = "higher" if low > 0 else "lower" if high < 0 else "no clear difference"
        parts.append(
            f"seed {row['seed']}: {100 * row['difference']:+.1f} points (95% CI {100 * low:+.1f} to "
            f"{100 * high:+.1f}, {verdict})"
        )
    return f"- **CIPO − {name}, pass@1**: " + "; ".join(parts) + "."


def gain_over_start(metrics: dict) -> str:
    """pass@1 of each trained model minus its starting model's, with a paired interval over problems (one seed) or
    the mean, the per-seed range and the lowest per-seed interval bound (several seeds)."""
    parts = []
    for key in MODELS:
        rows = paired_difference(metrics, key, "warm")["per_seed"]
        gains = [100 * row["difference"] for row in rows]
        lows, highs = [100 * row["ci95"][0] for row in rows], [100 * row["ci95"][1] for row in rows]
        if len(gains) == 1:
            parts.append(f"{labels(metrics)[key]} {gains[0]:+.1f} ({lows[0]:+.1f} to {highs[0]:+.1f})")
        elif gains:
            parts.append(f"{labels(metrics)[key]} {statistics.fmean(gains):+.1f} (seeds {min(gains):+.1f} to "
                         f"{max(gains):+.1f}; lowest interval bound {min(lows):+.1f})")
    name = labels(metrics)["warm"].lower()
    return f"- **Trained − {name}, pass@1** (points, 95% CI over problems): " + "; ".join(parts) + "." if parts else ""


def summary(metrics: dict) -> str:
    lines = [gain_over_start(metrics),
             describe_difference("GRPO (same steps)", paired_difference(metrics, "cipo", "grpo"))]
    if metrics["runs"] and "grpo_equal_tokens" in metrics["runs"][0]:
        lines.append(describe_difference("GRPO (equal tokens)", paired_difference(metrics, "cipo", "grpo_equal_tokens")))
    wins = sum(
        run["cipo"]["eval"]["pass_at_k"]["1"] > run["grpo"]["eval"]["pass_at_k"]["1"] for run in metrics["runs"]
    )
    lines.append(
        f"- CIPO's pass@1 is above same-step GRPO's in {wins} of {len(metrics['runs'])} seed(s). "
        "These per-seed intervals resample test problems (paired), so they cover evaluation noise only; the "
        "claims table below covers training noise as well."
    )
    return "\n".join(line for line in lines if line)


CLAIMS_RULE = (
    f"Each row is a paired difference (CIPO minus the baseline, on the same held-out problems), in points, averaged "
    f"over seeds. The {100 * CONFIDENCE:.0f}% interval is a hierarchical bootstrap: seeds are resampled (training "
    "noise), then problems within each seed (evaluation noise). Verdict rule (`cipo.lab.stats.verdict`): the "
    "interval entirely on the side the claim predicts → supported; entirely on the other side → not supported; "
    f"containing 0 → undecided; fewer than {MIN_SEEDS} seeds → undecided (training noise cannot be estimated). "
    "right→wrong is predicted to be lower for CIPO. Results are reproducible for one machine and thread count; "
    "another CPU or `--threads` changes floating-point sums and so every number."
)


def claims_section(metrics: dict) -> list[str]:
    rows = metrics.get("claims") or claims_table(metrics)
    return ["## Claims", CLAIMS_RULE, render_claims(rows)] if rows else []


def ablation_section(metrics: dict) -> list[str]:
    rows = metrics.get("ablation") or ablation_table(metrics)
    if not rows:
        return []
    text = ("CIPO with one part switched off at a time, same warm start, seeds and data; each cell is the variant "
            "minus full CIPO in points with the claims' interval. *Part helps pass@1* applies the verdict rule to "
            "the claim that full CIPO beats the variant in pass@1 (for the weight rows: that weight 1 beats it).")
    return ["## Ablations", text, render_ablation(rows)]


# -------------------------------------------------------------------------------------------- the plots


def smooth(values: Sequence[float], window: int = 5) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = [v for v in values[max(0, i - window + 1) : i + 1] if v is not None]
        out.append(sum(chunk) / len(chunk) if chunk else float("nan"))
    return out


def series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(entry["step"], entry[key]) for entry in history if key in entry and entry[key] is not None]
    return [p[0] for p in points], [p[1] for p in points]


def training_runs(metrics: dict) -> list[tuple[str, dict]]:
    """(model key, run record) pairs to plot; GRPO's longer equal-token run contains the same-step one."""
    runs = []
    for run in metrics["runs"]:
        runs.append(("cipo", run["cipo"]))
        runs.append(("grpo", run.get("grpo_equal_tokens", run["grpo"])))
    return runs


def plot_training(path: Path, metrics: dict) -> None:
    fig, (by_step, by_tokens) = plt.subplots(1, 2, figsize=(11, 4))
    labelled = set()
    for key, run in training_runs(metrics):
        steps, rewards = series(run["history"], "reward")
        label = labels(metrics)[key] if key not in labelled else None
        labelled.add(key)
        by_step.plot(steps, smooth(rewards), color=COLORS[key], label=label)
        by_step.plot(steps, rewards, color=COLORS[key], alpha=0.2, linewidth=0.8)
        tokens = run["cumulative_tokens"][: len(rewards)]
        by_tokens.plot(tokens, smooth(rewards)[: len(tokens)], color=COLORS[key], label=label)
    steps_cipo = metrics["config"]["rl"]["steps"]
    by_step.axvline(steps_cipo, color="black", linestyle=":", linewidth=1, label="same-step comparison")
    by_step.set(xlabel="optimizer step", ylabel="mean rollout reward (moving avg. 5)", title="Training reward")
    by_tokens.set(xlabel="generated tokens (rollouts + corrections)", ylabel="mean rollout reward",
                  title="Training reward vs. generation budget")
    for ax in (by_step, by_tokens):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_corrections(path: Path, metrics: dict) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = plt.get_cmap("tab10")
    for index, (key, label) in enumerate(CORRECTION_KEYS.items()):
        for seed_index, run in enumerate(metrics["runs"]):
            steps, values = series(run["cipo"]["history"], key)
            ax.plot(steps, smooth(values), color=colors(index), alpha=1.0 if seed_index == 0 else 0.4,
                    linestyle="--" if key.endswith("replay_ratio") else "-", label=label if seed_index == 0 else None)
    anchors = [value for run in metrics["runs"] for value in series(run["cipo"]["history"], "correction/num_anchors")[1]]
    per_step = f", {statistics.fmean(anchors):.0f} anchors per step" if anchors else ""
    ax.set(xlabel="optimizer step", ylabel="rate (moving avg. 5)", ylim=(-0.02, 1.02),
           title=f"CIPO's corrections during training{per_step}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_self_correction(path: Path, metrics: dict) -> None:
    names = {"acc_t1": "Acc@t1", "acc_t2": "Acc@t2", "wrong_to_right": "wrong→right", "right_to_wrong": "right→wrong"}
    models = present_models(metrics)
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(models)
    for index, key in enumerate(models):
        values = [statistics.fmean([e["self_correction"][name] or 0.0 for e in model_evals(metrics, key)])
                  for name in names]
        positions = [i + (index - (len(models) - 1) / 2) * width for i in range(len(names))]
        ax.bar(positions, values, width=width, color=COLORS[key], label=labels(metrics)[key])
    ax.set_xticks(range(len(names)), list(names.values()))
    ax.set(ylabel="share", ylim=(0, 1), title="Two-turn self-correction on the held-out split")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pass_at_k(path: Path, metrics: dict) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in present_models(metrics):
        evals = model_evals(metrics, key)
        ks = sorted(int(k) for k in evals[0]["pass_at_k"])
        curves = [[e["pass_at_k"][str(k)] for k in ks] for e in evals]
        mean = [statistics.fmean(values) for values in zip(*curves, strict=True)]
        ax.plot(ks, mean, color=COLORS[key], label=labels(metrics)[key], marker="o", markersize=2)
        if len(curves) > 1:
            low = [min(values) for values in zip(*curves, strict=True)]
            high = [max(values) for values in zip(*curves, strict=True)]
            ax.fill_between(ks, low, high, color=COLORS[key], alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k", ylabel="pass@k (unbiased estimator)", title="pass@k on the held-out split")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -------------------------------------------------------------------------------------------- the page


def partial_notice(metrics: dict) -> list[str]:
    """A warning line when the run stopped before its end (the report is rewritten after each finished unit)."""
    finished = metrics.get("finished", "all")
    if finished == "all":
        return []
    return [f"**Partial run**: the run stopped after the {finished}; every table below covers what had finished."]


def start_lines(metrics: dict) -> list[str]:
    """The report's lines on the model every run starts from: the trained tiny warm start, or a pretrained model."""
    config, warm = metrics["config"], metrics["warm_start"]
    trained = config["rl"].get("trainable_layers", 0)
    scope = (f" GRPO and CIPO train its top {trained} decoder layers and final norm; the rest stays frozen."
             if trained else "")
    if warm.get("pretrained"):
        return [f"- **Model**: the pretrained `{warm['pretrained']}` ({warm['parameters']:,} parameters, "
                f"{warm.get('num_layers', '?')} layers, its own tokenizer of {warm['vocab_size']:,} tokens and chat "
                f"template), the start of every run: no warm start, no supervised training.{scope} Loaded from "
                f"`{warm['path']}`."]
    return [
        f"- **Model**: a Llama of {warm['parameters']:,} parameters ({config['model']['num_layers']} layers, width "
        f"{config['model']['hidden_size']}), byte-level BPE tokenizer of {warm['vocab_size']} tokens with a chat "
        f"template, loaded with `from_pretrained`.{scope}",
        f"- **Warm start**: {config['warm_start']['steps']} SFT steps of {config['warm_start']['batch_size']} "
        f"examples; steps slip with probability {config['warm_start']['slip_rate']}; "
        f"{100 * config['warm_start']['review_fraction']:.0f}% of the examples are reviews (problem, attempt, "
        f"review instruction, fixed or kept solution). Final loss {warm['final_loss']:.3f}; "
        f"{warm_source(warm)} "
        f"({warm['train_seconds']:.0f}s when trained). Cache: `{warm['path']}`.",
    ]


def start_source(record: dict) -> str:
    """Where a start came from, from its record: ``pretrained``, ``shipped``, ``cached`` or ``trained``."""
    if record.get("pretrained"):
        return "pretrained"
    if record.get("shipped"):
        return "shipped"
    return "cached" if record["cached"] else "trained"


WARM_SOURCE_TEXT = {"trained": "trained in this run", "shipped": "shipped with cipo (cipo/lab/warm_starts)",
                    "cached": "reused from the cache"}


def warm_source(warm: dict) -> str:
    return WARM_SOURCE_TEXT[start_source(warm)]


def render_markdown(metrics: dict) -> str:
    config = metrics["config"]
    env = metrics["environment"]
    timings = metrics["timings_seconds"]
    memory = metrics["peak_memory_mib"]
    seeds = ", ".join(str(s) for s in metrics["seeds"])
    example = metrics["warm_start"]["eval"]["examples"]
    fixed = next((run["cipo"]["eval"]["examples"] for run in metrics["runs"]
                  if "fixed_attempt" in run["cipo"]["eval"]["examples"]), None)
    rl = config["rl"]
    sections = [
        "# CIPO lab report",
        f"`{metrics['command']}` — preset **{metrics['preset']}**, seed(s) {seeds}, "
        f"{metrics['test_problems']} held-out problems, wall time **{timings['total'] / 60:.1f} min**, "
        f"peak memory **{memory.get('with_children', memory['lab_process']) / 1024:.2f} GiB** (the lab and its verifier worker processes; "
        f"the lab process alone {memory['lab_process'] / 1024:.2f} GiB).",
        *partial_notice(metrics),
        "## Results",
        "Percentages on the held-out split (mean ± standard deviation over seeds when there are several). "
        f"pass@k: unbiased estimator from n = {config['eval']['num_samples']} samples per problem at temperature "
        f"{config['eval']['temperature']}. Greedy: one greedy answer per problem. Self-correction: the first "
        f"{config['eval']['correction_attempts']} samples of each problem (turn 1) are each reviewed once by the "
        "same model with the default review instruction (turn 2); wrong→right is the share of wrong turn-1 answers "
        "that turn 2 fixed, right→wrong the share of right ones it broke.",
        results_table(metrics),
        summary(metrics),
        *claims_section(metrics),
        *ablation_section(metrics),
        "### pass@1 by difficulty level",
        level_table(metrics),
        "### Every seed",
        per_seed_table(metrics),
        "## Plots",
        "![training reward](training_reward.png)",
        "![correction metrics](correction_metrics.png)",
        "![pass@k](pass_at_k.png)",
        "![self-correction](self_correction.png)",
        "## What ran",
        f"- **Task** ({config['task'].get('name', 'math')}): "
        + get_task(config["task"].get("name", "math")).describe(config["task"]),
        *start_lines(metrics),
        f"- **GRPO and CIPO**: {rl['steps']} steps each of {rl['prompts_per_step']} problems × "
        f"{rl['num_generations']} rollouts, constant learning rate {rl['learning_rate']}, temperature "
        f"{rl['temperature']}, same seed and data order. CIPO adds {rl['correction_num_generations']} corrections "
        f"per anchor for {100 * rl['correction_anchor_fraction']:.1f}% of the rollouts. "
        + ("The equal-token GRPO is the same GRPO run continued until it has generated as many tokens as CIPO "
           f"(at most {rl['max_equal_token_factor']}× the steps)." if rl["equal_tokens"] else ""),
        "## Examples",
        f"A {labels(metrics)['warm'].lower()} sample for `{example['problem']}`:\n\n````\n{example['sample']}\n````",
    ]
    if fixed:
        sections.append(
            f"A CIPO correction on the held-out split, `{fixed['fixed_problem']}`. Turn 1:\n\n````\n"
            f"{fixed['fixed_attempt']}\n````\n\nTurn 2 (after the review instruction):\n\n````\n"
            f"{fixed['fixed_revision']}\n````"
        )
    sections += [
        "## Timings and versions",
        "| Phase | Seconds |\n|---|---|\n" + "\n".join(f"| {k} | {v:.0f} |" for k, v in timings.items()),
        ", ".join(f"{k} {v}" for k, v in env.items()),
        "## Exact configuration",
        "```json\n" + json.dumps(config, indent=1) + "\n```",
    ]
    return "\n\n".join(sections) + "\n"
