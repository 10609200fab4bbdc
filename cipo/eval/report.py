"""Markdown tables and pass@k plots, for one run or several runs side by side (``cipo eval --compare``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"
RATE_NOTE = (
    "wrong→right: share of the samples wrong at turn 1 that turn 2 fixed; "
    "right→wrong: share of the samples right at turn 1 that turn 2 broke."
)


def _percent(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def _with_ci(estimate: dict[str, float] | None, signed: bool = False) -> str:
    if not estimate:
        return "n/a"
    return (
        f"{_percent(estimate['mean'], signed)} "
        f"[{_percent(estimate['ci_low'], signed)}, {_percent(estimate['ci_high'], signed)}]"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _metric_names(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(family, k) pairs present in a result, in display order."""
    names = []
    for family in ("pass@k", "avg@k", "maj@k"):
        block = results.get("turn1") or results.get("turn2") or {}
        for k in block.get(family, {}):
            names.append((family, k))
    return names


def _label(family: str, k: str) -> str:
    return family.replace("@k", f"@{k}")


def markdown_report(results: dict[str, Any]) -> str:
    """A Markdown summary of one run: settings, pass@k / avg@k / maj@k per turn, and the correction rates."""
    sampling = results["sampling"]
    level = round(100 * results.get("confidence", 0.95))
    text = [
        f"## cipo eval: {results['benchmark']} ({results['mode']})\n",
        f"model `{results['model']}` · {results['num_problems']} problems · n = {results['n']} samples per problem · "
        f"temperature {sampling['temperature']} · top_p {sampling['top_p']} · "
        f"max_new_tokens {sampling['max_new_tokens']} · seed {sampling['seed']} · reward `{results['reward']}`\n",
        f"Scores in %, with {level}% bootstrap confidence intervals over problems.\n",
    ]
    turns = [(name, title) for name, title in (("turn1", "turn 1"), ("turn2", "turn 2")) if name in results]
    if results["mode"] == "fix":
        turns = [("turn2", "fix of the provided attempt")]
    rows = [
        [_label(family, k), *(_with_ci(results[turn][family].get(k)) for turn, _ in turns)]
        for family, k in _metric_names(results)
    ]
    text.append(_table(["metric", *(title for _, title in turns)], rows))
    if "correction" in results:
        text.append("\n" + correction_table([results]) + "\n" + RATE_NOTE + "\n")
    text += _notes_section(results.get("benchmark_notes") or {})
    text += _group_tables(results.get("groups") or {})
    return "\n".join(text)


def _notes_section(notes: dict[str, Any]) -> list[str]:
    """What the benchmark's loader reported: the score's name and which rows it left out, and why."""
    lines = [f"**{notes['score_name']}**. {notes.get('score_note', '')}\n"] if notes.get("score_name") else []
    if "records" in notes:
        skipped = ", ".join(f"{reason} {count}" for reason, count in (notes.get("skipped") or {}).items())
        unchecked = notes.get("not_checked_past_limit")
        lines.append(
            f"{notes['records']} records, {notes.get('gradeable')} graded; skipped: {skipped or 'none'}"
            + (f"; {unchecked} gradeable rows past --limit not graded" if unchecked else "")
            + ".\n"
        )
    return lines


def _group_tables(groups: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """One table per field (bug type, level...): problems and accuracy in %, provided attempts in fix mode."""
    text = []
    for name, values in groups.items():
        with_provided = any("provided_accuracy" in block for block in values.values())
        header = [name, "problems", "accuracy", *(["provided attempts"] if with_provided else [])]
        rows = [
            [
                value,
                str(block["problems"]),
                _percent(block["accuracy"]),
                *([_percent(block.get("provided_accuracy"))] if with_provided else []),
            ]
            for value, block in values.items()
        ]
        text.append(f"\nBy {name.replace('_', ' ')}:\n\n" + _table(header, rows))
    return text


def correction_table(all_results: Sequence[dict[str, Any]], labels: Sequence[str] | None = None) -> str:
    header = ["Acc@t1", "Acc@t2", "Δ (t2 − t1)", "wrong→right", "right→wrong", "pairs"]
    rows = []
    for results in all_results:
        rates = results["correction"]
        rows.append(
            [
                _with_ci(rates.get("acc_t1_ci")),
                _with_ci(rates.get("acc_t2_ci")),
                _with_ci(rates.get("delta_ci"), signed=True),
                _percent(rates.get("wrong_to_right")),
                _percent(rates.get("right_to_wrong")),
                str(rates.get("num_pairs")),
            ]
        )
    if labels is not None:
        header = ["run", *header]
        rows = [[label, *row] for label, row in zip(labels, rows, strict=True)]
    return _table(header, rows)


# ---------------------------------------------------------------------------------------------------------------
# Several runs


def load_results(run: str | Path) -> dict[str, Any]:
    """results.json of a run folder (or the file itself)."""
    path = Path(run)
    if path.suffix != ".json":
        path = path / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {run} a finished `cipo eval` run?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error.msg} at line {error.lineno})") from error


def run_label(run: str | Path) -> str:
    path = Path(run).resolve()
    return (path.parent if path.suffix == ".json" else path).name or str(path)


def comparison_table(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """One Markdown table with a column per run: settings, then every metric any run reports."""
    labels = [label for label, _ in runs]
    rows = [
        ["benchmark", *(r["benchmark"] for _, r in runs)],
        ["mode", *(r["mode"] for _, r in runs)],
        ["problems × n", *(f"{r['num_problems']} × {r['n']}" for _, r in runs)],
        [
            "temperature / top_p",
            *(f"{r['sampling']['temperature']} / {r['sampling']['top_p']}" for _, r in runs),
        ],
    ]
    names: list[tuple[str, str]] = []
    for _, results in runs:
        names += [name for name in _metric_names(results) if name not in names]
    names.sort(key=lambda name: (("pass@k", "avg@k", "maj@k").index(name[0]), int(name[1])))
    for turn, suffix in (("turn1", ""), ("turn2", " (turn 2)")):
        if not any(turn in r for _, r in runs):
            continue
        for family, k in names:
            rows.append(
                [
                    _label(family, k) + suffix,
                    *(_with_ci(r.get(turn, {}).get(family, {}).get(k)) for _, r in runs),
                ]
            )
    for key, title, signed in (
        ("acc_t1_ci", "Acc@t1", False),
        ("acc_t2_ci", "Acc@t2", False),
        ("delta_ci", "Δ (t2 − t1)", True),
    ):
        if any("correction" in r for _, r in runs):
            rows.append([title, *(_with_ci(r.get("correction", {}).get(key), signed) for _, r in runs)])
    for key, title in (("wrong_to_right", "wrong→right"), ("right_to_wrong", "right→wrong")):
        if any("correction" in r for _, r in runs):
            rows.append([title, *(_percent(r.get("correction", {}).get(key)) for _, r in runs)])
    return _table(["metric", *labels], rows)


def plot_pass_at_k(
    runs: Sequence[tuple[str, dict[str, Any]]], path: str | Path, title: str | None = None
) -> Path:
    """pass@k against k (log scale) with confidence bands; turn 2 dashed in the run's colour."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend or global state needed

    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    axes = figure.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for colour, (label, results) in zip(colours, runs, strict=True):
        for turn, style, suffix in (("turn1", "-", ""), ("turn2", "--", " (turn 2)")):
            curve = results.get(turn, {}).get("pass@k")
            if not curve:
                continue
            ks = sorted(curve, key=int)
            x = [int(k) for k in ks]
            axes.plot(
                x, [100 * curve[k]["mean"] for k in ks], style, marker="o", color=colour, label=label + suffix
            )
            axes.fill_between(
                x,
                [100 * curve[k]["ci_low"] for k in ks],
                [100 * curve[k]["ci_high"] for k in ks],
                color=colour,
                alpha=0.15,
                linewidth=0,
            )
    axes.set_xscale("log", base=2)
    all_ks = sorted(
        {int(k) for _, r in runs for turn in ("turn1", "turn2") for k in r.get(turn, {}).get("pass@k", {})}
    )
    axes.set_xticks(all_ks, [str(k) for k in all_ks])
    axes.minorticks_off()
    axes.set_xlabel("k (samples)")
    axes.set_ylabel("pass@k (%)")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    benchmarks = sorted({results["benchmark"] for _, results in runs})
    axes.set_title(title or f"pass@k on {', '.join(benchmarks)}")
    axes.legend(fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def compare_runs(run_dirs: Sequence[str | Path], output_dir: str | Path) -> str:
    """Write compare.md and compare_pass_at_k.png for several runs; return the table."""
    runs = [(run_label(run), load_results(run)) for run in run_dirs]
    labels = [label for label, _ in runs]
    runs = [
        (label if labels.count(label) == 1 else f"{label} ({i + 1})", results)
        for i, (label, results) in enumerate(runs)
    ]
    table = comparison_table(runs)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "compare.md").write_text(table, encoding="utf-8")
    plot_pass_at_k(runs, output / "compare_pass_at_k.png")
    return table
