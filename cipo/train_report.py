"""``cipo report OUTPUT_DIR``: ``report.md`` and PNG plots of a ``cipo train`` run, without TensorBoard.

The run is read from what ``cipo train`` leaves in its ``output_dir``: ``trainer_state.json`` (at the top level
after training, and in every ``checkpoint-*`` folder) with its ``log_history``, and ``cipo_train_config.json``,
the resolved configuration and the wall-clock times that ``cipo train`` writes (``record_run``). TRL's
``training_args.bin`` is a pickle and is never loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cipo.eval.report import _table as markdown_table

PROG = "cipo report"
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "cipo_train_config.json"
REPORT_FILE = "report.md"
CHECKPOINT = re.compile(r"checkpoint-(\d+)")

REWARD = {"reward": "mean rollout reward"}
CORRECTION_RATES = {
    "correction/success_rate": "success rate",
    "correction/retention": "retention (right -> still right)",
    "correction/fix_rate": "fix rate (wrong -> right)",
    "correction/break_rate": "break rate (right -> wrong)",
}
REPLAY = {"correction/replay_ratio": "replay ratio"}
TABLE_ONLY = {"loss": "loss", "correction/num_anchors": "anchors per step"}
RATE_LIMITS = (-0.02, 1.02)
PLOTS = (  # file, title, y label, y limits (None: fit the data), the metrics drawn in it
    ("reward.png", "Training reward", "mean reward", None, REWARD),
    ("correction_rates.png", "Corrections during training", "rate", RATE_LIMITS, CORRECTION_RATES),
    ("replay_ratio.png", "Replay ratio", "share of anchors that were right", RATE_LIMITS, REPLAY),
)
LINE_STYLES = ("-", "--", "-.", ":")  # equal curves (two rates at 0) stay visible one over the other
METRICS = {**REWARD, **CORRECTION_RATES, **REPLAY, **TABLE_ONLY}
MAX_TABLE_ROWS = 20
# Series longer than this many points get a moving average over the raw line (not the replay ratio: a state).
SMOOTH_ABOVE = 20
TRAINING_FIELDS = (
    "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "num_generations",
    "max_completion_length", "max_steps", "num_train_epochs", "beta", "loss_type", "seed", "report_to",
)  # fmt: skip


class ReportError(ValueError):
    """The output folder cannot be reported on; the message names the path and what is missing."""


@dataclasses.dataclass
class Run:
    output_dir: Path
    state_path: Path
    state: dict[str, Any]
    history: list[dict[str, Any]]
    record: dict[str, Any] | None  # cipo_train_config.json, None when the run did not write one


# -------------------------------------------------------------------------------------------- reading a run


def find_state(output_dir: Path) -> Path:
    """The trainer_state.json with the most steps: the top-level one, or the newest checkpoint's."""
    if not output_dir.is_dir():
        raise ReportError(f"{output_dir}: no such directory (give the output_dir of a `cipo train` run)")
    candidates = [output_dir / STATE_FILE] if (output_dir / STATE_FILE).is_file() else []
    checkpoints = [p for p in output_dir.iterdir() if p.is_dir() and CHECKPOINT.fullmatch(p.name)]
    checkpoints.sort(key=lambda p: int(CHECKPOINT.fullmatch(p.name).group(1)))
    if checkpoints and (checkpoints[-1] / STATE_FILE).is_file():
        candidates.append(checkpoints[-1] / STATE_FILE)
    if not candidates:
        raise ReportError(
            f"{output_dir}: no {STATE_FILE}, neither at the top level nor in a checkpoint-* folder "
            f"({len(checkpoints)} found); `cipo train` writes it at the end of training and at each checkpoint"
        )
    return max(candidates, key=lambda path: _read_json(path).get("global_step", 0))  # top level wins a tie


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: not readable as JSON ({error})") from error
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def load_run(output_dir: str | Path) -> Run:
    output_dir = Path(output_dir)
    state_path = find_state(output_dir)
    state = _read_json(state_path)
    history = state.get("log_history")
    if not isinstance(history, list):
        raise ReportError(f"{state_path}: no 'log_history' list")
    record = _read_json(output_dir / CONFIG_FILE) if (output_dir / CONFIG_FILE).is_file() else None
    return Run(output_dir, state_path, state, history, record)


def series(history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric over the logged steps that carry it."""
    points = [
        (entry["step"], float(entry[key]))
        for entry in history
        if "step" in entry and entry.get(key) is not None
    ]
    return [step for step, _ in points], [value for _, value in points]


def final_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The Trainer's closing log entry (train_runtime, train_loss, ...), empty if training did not finish."""
    return next((entry for entry in reversed(history) if "train_runtime" in entry), {})


# -------------------------------------------------------------------------------------------- plots


def moving_average(values: Sequence[float], window: int) -> list[float]:
    return [sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
            for i in range(len(values))]  # fmt: skip


def plot_metrics(
    path: Path,
    title: str,
    ylabel: str,
    ylim: tuple[float, float] | None,
    curves: dict[str, tuple[list, list]],
    smooth: bool = True,
) -> None:
    """One line per metric over optimizer steps; long series are drawn faint with a moving average on top."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend or global state (as cipo.eval.report)

    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.add_subplot()
    for index, (label, (steps, values)) in enumerate(curves.items()):
        style = {
            "color": f"C{index % 10}",
            "linestyle": LINE_STYLES[index % len(LINE_STYLES)],
            "linewidth": 1.8,
        }
        if smooth and len(values) > SMOOTH_ABOVE:
            window = max(5, len(values) // 25)
            axes.plot(steps, values, color=style["color"], alpha=0.25, linewidth=0.8)
            axes.plot(steps, moving_average(values, window), **style, label=f"{label} (moving avg. {window})")
        else:
            axes.plot(steps, values, **style, marker="o", markersize=3, label=label)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if ylim:
        axes.set_ylim(*ylim)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path, dpi=110)


# -------------------------------------------------------------------------------------------- the page


def number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def metrics_section(run: Run, written: dict[str, str]) -> list[str]:
    lines = ["## Metrics over steps", ""]
    rows = []
    for key, label in METRICS.items():
        values = series(run.history, key)[1]
        if values:
            rows.append([label, f"`{key}`", str(len(values)), number(values[0]), number(values[-1]),
                         number(sum(values) / len(values)), number(min(values)), number(max(values))])  # fmt: skip
    if rows:
        lines += [
            markdown_table(["metric", "log key", "logged steps", "first", "last", "mean", "min", "max"], rows)
        ]
    missing = [f"`{key}`" for key in METRICS if not series(run.history, key)[1]]
    if missing:
        lines += [f"Not logged in this run: {', '.join(missing)}.{_missing_reason(run, missing)}", ""]
    for file, title in written.items():
        lines += [f"### {title}", "", f"![{title}]({file})", ""]
    return lines


def _missing_reason(run: Run, missing: list[str]) -> str:
    use_correction = ((run.record or {}).get("training") or {}).get("use_correction")
    if use_correction is False:
        return " The run is plain GRPO (`use_correction: false`): it makes no corrections."
    if "`correction/retention`" in missing or "`correction/break_rate`" in missing:
        return (" Retention and the break rate are logged only on steps with anchors that were right at turn 1;"
                " the fix rate only on steps with anchors that were wrong.")  # fmt: skip
    return ""


def steps_table(run: Run) -> list[str]:
    entries = [entry for entry in run.history if "step" in entry and any(key in entry for key in METRICS)]
    if not entries:
        return ["## Logged steps", "", f"No training metrics in the log_history of {run.state_path}.", ""]
    every = -(-len(entries) // MAX_TABLE_ROWS)
    shown = entries[::every] if entries[::every][-1] is entries[-1] else [*entries[::every], entries[-1]]
    keys = [key for key in METRICS if any(key in entry for entry in entries)]
    rows = [
        [str(entry["step"]), *(number(entry[key]) if key in entry else "" for key in keys)] for entry in shown
    ]
    note = f"one in {every}, and the last" if every > 1 else "all of them"
    return ["## Logged steps", "", f"{len(entries)} logged steps; shown: {note}.", "",
            markdown_table(["step", *(METRICS[key] for key in keys)], rows)]  # fmt: skip


def config_section(run: Run) -> list[str]:
    lines = ["## Configuration", ""]
    if run.record is None:
        return [*lines, f"No {CONFIG_FILE} in {run.output_dir}: the configuration is not shown (the run was "
                f"not made by `cipo train`, or by a version that did not write it).", ""]  # fmt: skip
    training = run.record.get("training") or {}
    cipo = {name: training.get(name) for name in run.record.get("cipo_fields", [])}
    general = {
        "model": (run.record.get("model") or {}).get("model_name_or_path"),
        **{name: (run.record.get("data") or {}).get(name) for name in ("dataset_name", "reward_funcs")},
        **{name: training[name] for name in TRAINING_FIELDS if name in training},
    }
    for title, fields in (("CIPO", cipo), ("Model, data and training", general)):
        rows = [[f"`{name}`", f"`{json.dumps(value)}`"] for name, value in fields.items()]
        lines += [f"### {title}", "", markdown_table(["field", "value"], rows)]
    return [*lines, f"Every field: [{CONFIG_FILE}]({CONFIG_FILE}).", ""]


def _iso(seconds: float | None) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if seconds else "?"


def time_section(run: Run) -> list[str]:
    lines = ["## Steps and wall time", ""]
    max_steps = run.state.get("max_steps")
    lines.append(f"- steps: {run.state.get('global_step', '?')} of {max_steps if max_steps else '?'} "
                 f"(from {run.state_path.relative_to(run.output_dir)})")  # fmt: skip
    record = run.record or {}
    if record.get("finished_at"):
        wall = record["finished_at"] - record["started_at"]
        lines.append(f"- wall time of `cipo train`: {wall:.1f} s ({_iso(record['started_at'])} to "
                     f"{_iso(record['finished_at'])}), model and data loading included")  # fmt: skip
    elif record.get("started_at"):
        lines.append(f"- `cipo train` started {_iso(record['started_at'])} and did not finish")
    closing = final_summary(run.history)
    if closing:
        lines.append(f"- training loop: {closing['train_runtime']:.1f} s, "
                     f"{number(closing.get('train_steps_per_second', float('nan')))} steps/s")  # fmt: skip
    else:
        lines.append("- the training loop has no closing log entry (`train_runtime`): it did not finish, or this "
                     "checkpoint was saved before the end")  # fmt: skip
    step_times = series(run.history, "step_time")[1]
    if step_times:
        lines.append(
            f"- mean step time: {sum(step_times) / len(step_times):.2f} s over {len(step_times)} steps"
        )
    return [*lines, ""]


def render_report(run: Run, written: dict[str, str]) -> str:
    use_correction = ((run.record or {}).get("training") or {}).get("use_correction")
    kind = {True: "CIPO run", False: "GRPO run"}.get(use_correction, "Run")
    header = [f"# Training report: {run.output_dir.name}", "",
              f"{kind} in `{run.output_dir}`, read from `{run.state_path.relative_to(run.output_dir)}`.", ""]  # fmt: skip
    return "\n".join(header + time_section(run) + metrics_section(run, written) + steps_table(run)
                     + config_section(run))  # fmt: skip


def write_report(output_dir: str | Path) -> Path:
    """Writes report.md and the PNGs of the metrics that were logged into output_dir; returns report.md's path."""
    run = load_run(output_dir)
    written = {}
    for file, title, ylabel, ylim, metrics in PLOTS:
        curves = {label: series(run.history, key) for key, label in metrics.items()}
        curves = {label: curve for label, curve in curves.items() if curve[1]}
        if curves:
            plot_metrics(run.output_dir / file, title, ylabel, ylim, curves, smooth=metrics is not REPLAY)
            written[file] = title
    path = run.output_dir / REPORT_FILE
    path.write_text(render_report(run, written))
    return path


# -------------------------------------------------------------------------------------------- cipo train's record


def record_run(
    trainer: Any, data_args: Any, model_args: Any, started_at: float, finished: bool = False
) -> None:
    """Writes OUTPUT_DIR/cipo_train_config.json on the main process: resolved configuration and wall-clock times."""
    if not trainer.is_world_process_zero():
        return
    from trl import GRPOConfig

    config = trainer.args
    base_fields = {field.name for field in dataclasses.fields(GRPOConfig)}
    record = {
        "started_at": started_at,
        "finished_at": time.time() if finished else None,
        "cipo_fields": [field.name for field in dataclasses.fields(config) if field.name not in base_fields],
        "training": config.to_dict(),
        "data": dataclasses.asdict(data_args),
        "model": dataclasses.asdict(model_args),
    }
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / CONFIG_FILE).write_text(json.dumps(record, indent=1, default=str))


# -------------------------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Write report.md and plots of a `cipo train` run."
    )
    parser.add_argument(
        "output_dir", help="the output_dir of a `cipo train` run (report.md and PNGs go there)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        path = write_report(args.output_dir)
    except ReportError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
