"""``CIPOTrainer``: TRL's ``GRPOTrainer`` plus on-policy self-correction samples.

One training step, top to bottom (see ``_generate_and_score_completions``):

1. GRPO as usual: the parent generates G rollouts per prompt, scores them and computes group advantages.
2. Anchors: among those rollouts, pick near misses (``cipo.core.anchors``), a replay share of them correct.
3. Corrections: each anchor's prompt + attempt + review instruction (``cipo.core.prompts``) is sampled
   ``correction_num_generations`` times by the *current* policy and scored by the same reward functions; this
   reuses the parent's generation and scoring path, so vLLM, tools and distributed gathering behave the same.
4. Shaping and advantages: a correction that breaks a correct anchor gets ``-risk_penalty``
   (``cipo.core.shaping``); advantages are normalized within each anchor's corrections and weighted
   (``cipo.core.advantages``).
5. The correction rows are appended to the GRPO batch; the parent's loss trains on both. The training forward runs
   short-prompt and long-prompt rows apart, so original rows are not computed over the correction prompts' padding.
6. The replay controller (``cipo.core.replay``) updates the correct-anchor share from this step's retention.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.utils import gather_object
from trl import GRPOTrainer

from cipo.config import CIPOConfig
from cipo.core.advantages import correction_advantages
from cipo.core.anchors import AnchorSelection, anchor_budget, select_anchors
from cipo.core.prompts import build_correction_row, with_feedback
from cipo.core.replay import ReplayController
from cipo.core.shaping import CorrectionStats, correction_stats, is_success, shape_correction_rewards
from cipo.rewards import get_feedback

STATE_FILE = "cipo_state.json"

# How the per-row tensors of a batch are padded when two batches are concatenated.
_LEFT_PADDED = {"prompt_ids": "pad_token", "prompt_mask": 0}
_RIGHT_PADDED = {
    "completion_ids": "pad_token",
    "completion_mask": 0,
    "tool_mask": 1,
    "old_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "importance_sampling_ratio": 1.0,
}


@dataclass
class _Scored:
    """What the parent's scoring saw: local rows and completions, gathered rewards of all ranks."""

    inputs: list[dict[str, Any]]
    completions: list[Any]
    rewards_per_func: torch.Tensor  # (global rows, reward functions)


class CIPOTrainer(GRPOTrainer):
    """GRPO with correction samples. Same constructor as ``GRPOTrainer``; ``args`` must be a ``CIPOConfig``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, CIPOConfig):
            raise TypeError(f"CIPOTrainer needs args=CIPOConfig(...), got {type(self.args).__name__}")
        config = self.args
        self.replay = ReplayController(
            ratio=config.replay_ratio,
            retention_target=config.retention_target,
            bounds=tuple(config.replay_ratio_bounds),
            step_size=config.replay_step_size,
            adaptive=config.adaptive_replay,
        )
        # Same seed on every rank: anchor choices must agree everywhere without communication.
        self.anchor_rng = random.Random(config.seed)
        self._check_micro_batch_cap()
        self._last_scored: _Scored | None = None
        self._warned_budget = False

    # ----------------------------------------------------------------------------------------------- the step
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super()._generate_and_score_completions(inputs)
        if not self.args.use_correction or not self.model.training:
            return batch
        originals = self._last_scored
        selection = self._select_anchors(originals)
        self._log("num_anchors", len(selection.indices))
        self._log("replay_ratio", self.replay.ratio)
        if not selection.indices:
            return batch

        correction_inputs, anchor_correct = self._correction_inputs(originals, selection)
        with self._correction_generation():
            correction_batch = super()._generate_and_score_completions(correction_inputs)
        raw_rewards = self._total_rewards(self._last_scored.rewards_per_func)
        correction_batch["advantages"] = self._correction_advantages(raw_rewards, anchor_correct)

        self._record(
            correction_stats(raw_rewards.tolist(), anchor_correct, self.args.correction_success_threshold)
        )
        return concat_batches(batch, correction_batch, self._tokenizer.pad_token_id, self.pad_to_multiple_of)

    # ------------------------------------------------------------------------------------------- the pieces
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # noqa: ANN001, ANN202
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_scored = _Scored(list(inputs), list(completions), rewards_per_func)
        return rewards_per_func

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, **kwargs
    ):  # noqa: ANN001, ANN202
        """The parent's forward; when training with corrections, on short-prompt and long-prompt rows apart.

        Correction prompts (prompt + attempt + instruction) are much longer than the originals, and the merged batch
        left-pads every row to the longest prompt: without the split, the original rows' forward and backward run
        over that padding. Dropping all-padding columns shifts a row's positions by a constant, which rotary and
        other relative position encodings do not see. Always two calls for two or more rows, so every rank calls
        the model equally often (FSDP and ZeRO-3 gather parameters collectively in each call).
        """
        multimodal = any(value is not None for key, value in kwargs.items() if not key.startswith("compute_"))
        split = self.args.use_correction and torch.is_grad_enabled() and not multimodal and len(input_ids) > 1
        if not split:
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, **kwargs
            )
        prompt_width = input_ids.size(1) - logits_to_keep
        prompt_lengths = attention_mask[:, :prompt_width].sum(dim=1)
        groups = split_by_prompt_length(prompt_lengths)
        parts = []
        for rows in groups:
            start = prompt_width - int(prompt_lengths[rows].max())
            parts.append(
                super()._get_per_token_logps_and_entropies(
                    model,
                    input_ids[rows, start:],
                    attention_mask[rows, start:],
                    logits_to_keep,
                    batch_size,
                    **kwargs,
                )
            )
        order = torch.argsort(torch.cat(groups))
        logps = torch.cat([part[0] for part in parts])[order]
        entropies = None if parts[0][1] is None else torch.cat([part[1] for part in parts])[order]
        aux_loss = None if parts[0][2] is None else torch.stack([part[2] for part in parts]).mean()
        return logps, entropies, aux_loss

    def _total_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        """Weighted sum over reward functions, NaN where no function could score the row (as the parent)."""
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        totals = (rewards_per_func * weights).nansum(dim=1)
        totals[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        return totals.cpu()

    def _anchor_unit(self) -> int:
        """Anchors come in multiples of this, so every rank and accumulation chunk gets whole rows."""
        chunks = self.args.steps_per_generation
        return (
            self.accelerator.num_processes * chunks // math.gcd(self.args.correction_num_generations, chunks)
        )

    def _check_micro_batch_cap(self) -> None:
        cap = self._anchor_cap()
        if self.args.use_correction and cap is not None and cap < self._anchor_unit():
            raise ValueError(
                f"CIPOConfig.correction_micro_batch={self.args.correction_micro_batch} admits {cap} anchors per step, "
                f"fewer than the smallest anchor unit ({self._anchor_unit()} = processes x steps_per_generation / "
                "gcd(correction_num_generations, steps_per_generation)): no correction would ever be trained. "
                "Raise it, or set use_correction=False."
            )

    def _anchor_cap(self) -> int | None:
        """Most anchors whose corrections keep every micro-batch within ``correction_micro_batch`` extra rows."""
        if self.args.correction_micro_batch is None:
            return None
        rows = (
            self.args.correction_micro_batch * self.args.steps_per_generation * self.accelerator.num_processes
        )
        return rows // self.args.correction_num_generations

    def _select_anchors(self, originals: _Scored) -> AnchorSelection:
        rewards = self._total_rewards(originals.rewards_per_func).tolist()
        correct = [is_success(r, self.args.correction_success_threshold) for r in rewards]
        budget = anchor_budget(
            len(correct), self.args.correction_anchor_fraction, self._anchor_unit(), self._anchor_cap()
        )
        self._warn_budget_once(len(correct), budget)
        return select_anchors(
            correct,
            group_size=self.num_generations,
            num_anchors=budget,
            correct_share=self.replay.ratio,
            difficulty_band=tuple(self.args.difficulty_band),
            rng=self.anchor_rng,
        )

    def _correction_inputs(
        self, originals: _Scored, selection: AnchorSelection
    ) -> tuple[list[dict], list[bool]]:
        """This rank's correction rows (each anchor repeated once per correction) and, for all ranks' rows in
        gathered order, whether the row's anchor was correct."""
        local_pairs = list(zip(originals.inputs, originals.completions, strict=True))
        all_pairs = gather_object(local_pairs) if self.accelerator.num_processes > 1 else local_pairs
        rewards = self._total_rewards(originals.rewards_per_func).tolist()
        per_rank = len(selection.indices) // self.accelerator.num_processes
        start = self.accelerator.process_index * per_rank
        local_anchors = selection.indices[start : start + per_rank]

        anchors = [all_pairs[index] for index in local_anchors]
        rows = []
        for (source_row, completion), instruction in zip(anchors, self._instructions(anchors), strict=True):
            row = build_correction_row(
                source_row,
                completion,
                tokenizer=self._tokenizer,
                max_attempt_tokens=self.args.correction_max_attempt_tokens,
                template=self.args.correction_template,
                instruction=instruction,
            )
            rows.extend(copy.deepcopy(row) for _ in range(self.args.correction_num_generations))
        threshold = self.args.correction_success_threshold
        anchor_correct = [
            is_success(rewards[index], threshold)
            for index in selection.indices
            for _ in range(self.args.correction_num_generations)
        ]
        return rows, anchor_correct

    def _instructions(self, anchors: list[tuple[dict[str, Any], Any]]) -> list[str]:
        """The review instruction of each anchor, preceded by execution feedback when the user opted in."""
        instruction = self.args.correction_instruction
        if not self.args.correction_feedback or not anchors:
            return [instruction] * len(anchors)
        feedback_fn = get_feedback(self.args.correction_feedback)
        columns = {key: [row[key] for row, _ in anchors] for key in anchors[0][0] if key != "prompt"}
        feedback = feedback_fn([completion for _, completion in anchors], **columns)
        return [with_feedback(text, instruction) for text in feedback]

    def _correction_advantages(self, raw_rewards: torch.Tensor, anchor_correct: list[bool]) -> torch.Tensor:
        """Shaped, group-normalized, weighted advantages of this rank's correction rows."""
        shaped = shape_correction_rewards(
            raw_rewards.tolist(),
            anchor_correct,
            self.args.correction_success_threshold,
            self.args.risk_penalty,
        )
        advantages = correction_advantages(
            torch.tensor(shaped, dtype=torch.float32),
            self.args.correction_num_generations,
            self.scale_rewards,
            self.args.correction_weight,
        )
        local_rows = len(advantages) // self.accelerator.num_processes
        start = self.accelerator.process_index * local_rows
        self._log("reward_shaped", float(torch.tensor(shaped).nanmean()))
        return advantages[start : start + local_rows].to(self.accelerator.device)

    def _record(self, stats: CorrectionStats) -> None:
        for name in ("success_rate", "retention", "fix_rate", "break_rate"):
            value = getattr(stats, name)
            if value is not None:
                self._log(name, value)
        self.replay.update(stats.retention)

    def _log(self, name: str, value: float) -> None:
        self._metrics["train"][f"correction/{name}"].append(float(value))

    def _warn_budget_once(self, num_rollouts: int, budget: int) -> None:
        wanted = self.args.correction_anchor_fraction * num_rollouts
        if self._warned_budget or wanted == 0 or abs(budget - wanted) < 1:
            return
        self._warned_budget = True
        unit = self._anchor_unit()
        print(
            f"[cipo] correction_anchor_fraction={self.args.correction_anchor_fraction} asks for {wanted:g} anchors "
            f"per step; using {budget} (a multiple of {unit} = processes x steps_per_generation / "
            f"gcd(correction_num_generations, steps_per_generation))."
        )

    @contextlib.contextmanager
    def _correction_generation(self) -> Iterator[None]:
        """Run the parent's generate-and-score on correction rows: groups of ``correction_num_generations``, and
        the parent's own metrics and completion logs diverted so they don't mix with the original rollouts."""
        metrics = self._metrics["train"]
        lengths_before = {name: len(values) for name, values in metrics.items()}
        logs_before = copy.deepcopy(self._logs)
        num_generations = self.num_generations
        self.num_generations = self.args.correction_num_generations
        try:
            yield
        finally:
            self.num_generations = num_generations
            self._logs = logs_before
            for name in list(metrics):
                if name.startswith("correction/") or name == "num_tokens":
                    continue
                start = lengths_before.get(name, 0)
                added = metrics[name][start:]
                del metrics[name][start:]
                if not metrics[name]:
                    del metrics[name]
                metrics[f"correction/{name}"].extend(added)

    # ------------------------------------------------------------------------------------- checkpoint/resume
    def cipo_state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.anchor_rng.getstate()
        return {"replay": self.replay.state_dict(), "anchor_rng": [version, list(internal), gauss]}

    def load_cipo_state_dict(self, state: dict[str, Any]) -> None:
        self.replay.load_state_dict(state["replay"])
        version, internal, gauss = state["anchor_rng"]
        self.anchor_rng.setstate((version, tuple(internal), gauss))

    def _save_checkpoint(self, model, trial):  # noqa: ANN001, ANN202
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            with open(os.path.join(folder, STATE_FILE), "w") as file:
                json.dump(self.cipo_state_dict(), file)

    def _load_optimizer_and_scheduler(self, checkpoint):  # noqa: ANN001, ANN202
        super()._load_optimizer_and_scheduler(checkpoint)
        path = os.path.join(checkpoint, STATE_FILE) if checkpoint else None
        if path and os.path.exists(path):
            with open(path) as file:
                self.load_cipo_state_dict(json.load(file))


def concat_batches(
    first: dict[str, Any], second: dict[str, Any], pad_token_id: int, pad_to_multiple_of: int | None = None
) -> dict[str, Any]:
    """Stack two GRPO batches row-wise, re-padding prompts on the left and completions on the right."""
    if set(first) != set(second):
        raise ValueError(f"batches differ in keys: {sorted(set(first) ^ set(second))}")
    merged: dict[str, Any] = {}
    for key, value in first.items():
        other = second[key]
        if key == "num_items_in_batch":
            merged[key] = value + other
        elif key == "advantages":
            merged[key] = torch.cat([value, other])
        elif key in _LEFT_PADDED or key in _RIGHT_PADDED:
            merged[key] = _pad_cat(key, value, other, pad_token_id, pad_to_multiple_of)
        elif value is None and other is None:
            merged[key] = None
        else:
            raise ValueError(
                f"CIPOTrainer cannot append correction rows to a batch with field {key!r} (multimodal?)"
            )
    return merged


def split_by_prompt_length(prompt_lengths: torch.Tensor) -> list[torch.Tensor]:
    """Row indices in two non-empty groups, short prompts and long prompts, cut where padding each group to its own
    longest prompt costs the fewest positions. Needs at least two rows."""
    order = torch.argsort(prompt_lengths, stable=True)
    lengths = prompt_lengths[order]
    sizes = torch.arange(1, len(order), device=lengths.device)  # rows in the short group
    cost = sizes * lengths[:-1] + (len(order) - sizes) * lengths[-1]
    cut = int(sizes[torch.argmin(cost)])
    return [order[:cut], order[cut:]]


def _pad_cat(
    key: str, first: torch.Tensor, second: torch.Tensor, pad_token_id: int, multiple: int | None
) -> torch.Tensor:
    if first.dim() == 1 or first.shape[1] == second.shape[1]:
        return torch.cat([first, second])
    side, value = ("left", _LEFT_PADDED[key]) if key in _LEFT_PADDED else ("right", _RIGHT_PADDED[key])
    value = pad_token_id if value == "pad_token" else value
    width = max(first.shape[1], second.shape[1])
    if multiple:
        width = -(-width // multiple) * multiple

    def widen(tensor: torch.Tensor) -> torch.Tensor:
        extra = width - tensor.shape[1]
        return F.pad(tensor, (extra, 0) if side == "left" else (0, extra), value=value)

    return torch.cat([widen(first), widen(second)])
