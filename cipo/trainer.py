"""``CIPOTrainer``: TRL's ``GRPOTrainer`` plus on-policy self-correction samples.

One training step, top to bottom:

1. GRPO as usual (``_generate_and_score_completions``): the parent generates G rollouts per prompt, scores them
   and computes group advantages.
2. Anchors: among those rollouts, pick near misses (``cipo.core.anchors``), a replay share of them correct.
3. Corrections: each anchor's prompt (as the model saw it) + attempt + review instruction (``cipo.core.prompts``)
   is sampled ``correction_num_generations`` times by the *current* policy and scored by the same reward functions;
   this reuses the parent's generation and scoring path, so vLLM, tools and distributed gathering behave the same.
4. Advantages and shaping: normalized within each anchor's corrections (``cipo.core.advantages``), then a
   correction that breaks a correct anchor loses ``risk_penalty`` (``cipo.core.shaping``).
5. The two sets of rows stay apart (``_prepare_inputs``): each is shuffled and cut into ``steps_per_generation``
   micro-batches as the parent cuts its batch, so every micro-batch holds the same number of correction rows.
6. The loss (``_compute_loss``) of a micro-batch is ``L_GRPO(originals) + correction_weight * L_GRPO(corrections)``:
   the parent's own loss on each set, normalised as GRPO normalises that set alone, for every ``loss_type``. Each
   set is forwarded with the padding it had when its old and reference log-probs were computed, so importance
   ratios are exactly 1 before an update, whatever the position encoding.
7. The replay controller (``cipo.core.replay``) updates the correct-anchor share from this step's retention.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer
from trl.trainer.utils import (
    shuffle_sequence_dict,
    split_pixel_values_by_grid,
    split_tensor_dict,
    unsplit_pixel_values_by_grid,
)

from cipo.builtin_models import resolve_model
from cipo.config import CIPOConfig
from cipo.core.advantages import group_advantages
from cipo.core.anchors import AnchorSelection, ShareRounder, anchor_budget, select_anchors
from cipo.core.prompts import build_correction_row, has_tool_turns, resolve_layout, with_feedback
from cipo.core.replay import ReplayController
from cipo.core.shaping import CorrectionStats, correction_stats, is_success, penalize_breaks
from cipo.rewards import get_feedback

logger = logging.getLogger(__name__)

STATE_FILE = "cipo_state.json"
# Key under which a batch carries its correction rows (a batch of the same form), kept apart from the originals.
CORRECTIONS = "cipo_corrections"
# TRL's entropy-bonus controller (use_adaptive_entropy): the coefficient, the last window's entropy, the window sums.
ENTROPY_CONTROLLER_STATE = ("entropy_coef", "_last_world_entropy", "_entropy_window_stats")


@dataclass
class _Scored:
    """What the parent's scoring saw: local rows, the prompts actually sent, completions, gathered rewards."""

    inputs: list[dict[str, Any]]
    prompts: list[Any]
    completions: list[Any]
    rewards_per_func: torch.Tensor  # (global rows, reward functions)


class CIPOTrainer(GRPOTrainer):
    """GRPO with correction samples. Same constructor as ``GRPOTrainer``; ``args`` defaults to a ``CIPOConfig``."""

    def __init__(self, model: Any, reward_funcs: Any = None, args: CIPOConfig | None = None, *rest: Any, **kwargs: Any):
        if args is None:  # as GRPOTrainer builds a default GRPOConfig
            args = CIPOConfig(f"{_model_name(model)}-CIPO")
        if isinstance(model, str):  # builtin:<name> and .gguf files become a local folder, like everywhere else
            model = resolve_model(model)
        if not isinstance(args, CIPOConfig):
            raise TypeError(f"CIPOTrainer needs args=CIPOConfig(...), got {type(args).__name__}")
        super().__init__(model, reward_funcs, args, *rest, **kwargs)
        config = self.args
        self.replay = ReplayController(
            ratio=config.replay_ratio,
            retention_target=config.retention_target,
            bounds=tuple(config.replay_ratio_bounds),
            step_size=config.replay_step_size,
            adaptive=config.adaptive_replay,
        )
        self.share_rounder = ShareRounder()
        # Same seed on every rank: anchor choices must agree everywhere without communication.
        self.anchor_rng = random.Random(config.seed)
        self.correction_layout = resolve_layout(config.correction_layout, self._tokenizer)
        self._check_micro_batch_cap()
        self._last_scored: _Scored | None = None
        self._rng_after_originals = torch.get_rng_state()
        self._warned_budget = False

    # ----------------------------------------------------------------------------------------------- the step
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """The parent's batch of originals; when training with corrections, their batch under ``CORRECTIONS``."""
        batch = super()._generate_and_score_completions(inputs)
        if not self.args.use_correction or not self.model.training:
            return batch
        self._rng_after_originals = torch.get_rng_state()
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
        return {**batch, CORRECTIONS: correction_batch}

    def _prepare_inputs(self, generation_batch: Any) -> dict[str, Any]:
        """The parent's buffering, with originals and corrections shuffled and split apart (stratified chunks)."""
        if not (self.model.training and self.args.use_correction):
            return super()._prepare_inputs(generation_batch)
        chunks = self.args.steps_per_generation
        if self._step % (chunks * self.num_iterations) == 0 or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            corrections = batch.pop(CORRECTIONS, None)
            # The permutation GRPO would draw right after generating: the originals' micro-batches are GRPO's own.
            with _rng_state(self._rng_after_originals):
                originals = _shuffled_chunks(batch, chunks)
            if corrections is None:
                self._buffered_inputs = originals
            else:
                extra = _shuffled_chunks(corrections, chunks)
                self._buffered_inputs = [{**o, CORRECTIONS: c} for o, c in zip(originals, extra, strict=True)]
        return self._buffered_inputs[self._step % chunks]

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        """``L_GRPO(originals) + correction_weight * L_GRPO(corrections)``, each the parent's loss on that set alone.

        Metrics the parent logs (entropy, kl, clip ratios, policy_loss) cover the originals; the corrections'
        call logs under ``correction/...``. The logged ``loss`` is the joint loss.
        """
        corrections = inputs.get(CORRECTIONS)
        if corrections is None:
            return super()._compute_loss(model, inputs)
        originals = {key: value for key, value in inputs.items() if key != CORRECTIONS}
        controller_before = self._entropy_controller_state()
        loss = super()._compute_loss(model, originals)
        controller_after = self._entropy_controller_state()
        # The corrections' term applies the originals' entropy coefficient; TRL's adaptive entropy controller,
        # which steps at the optimizer-step boundary, follows the originals only (else it stepped twice a step).
        self._set_entropy_controller_state(controller_before)
        with self._metrics_as_corrections():
            correction_loss = super()._compute_loss(model, corrections)
        self._set_entropy_controller_state(controller_after)
        return loss + self.args.correction_weight * correction_loss

    # ------------------------------------------------------------------------------------------- the pieces
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # noqa: ANN001, ANN202
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_scored = _Scored(list(inputs), list(prompts), list(completions), rewards_per_func)
        return rewards_per_func

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
            num_correct=self.share_rounder.count(budget, self.replay.ratio),
        )

    def _correction_inputs(
        self, originals: _Scored, selection: AnchorSelection
    ) -> tuple[list[dict], list[bool]]:
        """This rank's correction rows (each anchor repeated once per correction) and, for all ranks' rows in
        gathered order, whether the row's anchor was correct."""
        local_triples = list(zip(originals.inputs, originals.prompts, originals.completions, strict=True))
        all_triples = gather_object(local_triples) if self.accelerator.num_processes > 1 else local_triples
        rewards = self._total_rewards(originals.rewards_per_func).tolist()
        per_rank = len(selection.indices) // self.accelerator.num_processes
        start = self.accelerator.process_index * per_rank
        local_anchors = selection.indices[start : start + per_rank]

        anchors = [all_triples[index] for index in local_anchors]
        rows = []
        for (source_row, sent_prompt, completion), instruction in zip(anchors, self._instructions(anchors), strict=True):
            row = build_correction_row(
                source_row,
                completion,
                tokenizer=self._tokenizer,
                max_attempt_tokens=self.args.correction_max_attempt_tokens,
                template=self.args.correction_template,
                instruction=instruction,
                layout="conversation" if has_tool_turns(completion) else self.correction_layout,
                sent_prompt=sent_prompt,
            )
            rows.extend(copy.deepcopy(row) for _ in range(self.args.correction_num_generations))
        threshold = self.args.correction_success_threshold
        anchor_correct = [
            is_success(rewards[index], threshold)
            for index in selection.indices
            for _ in range(self.args.correction_num_generations)
        ]
        return rows, anchor_correct

    def _instructions(self, anchors: list[tuple[dict[str, Any], Any, Any]]) -> list[str]:
        """The review instruction of each anchor, preceded by execution feedback when the user opted in."""
        instruction = self.args.correction_instruction
        if not self.args.correction_feedback or not anchors:
            return [instruction] * len(anchors)
        feedback_fn = get_feedback(self.args.correction_feedback)
        columns = {key: [row[key] for row, _, _ in anchors] for key in anchors[0][0] if key != "prompt"}
        feedback = feedback_fn([completion for _, _, completion in anchors], **columns)
        return [with_feedback(text, instruction) for text in feedback]

    def _correction_advantages(self, raw_rewards: torch.Tensor, anchor_correct: list[bool]) -> torch.Tensor:
        """Group-normalized advantages of this rank's correction rows, minus the risk penalty on breaks (the weight
        is on the loss)."""
        normalized = group_advantages(
            raw_rewards.to(torch.float32), self.args.correction_num_generations, self.scale_rewards
        )
        advantages = torch.tensor(penalize_breaks(
            normalized.tolist(), raw_rewards.tolist(), anchor_correct, self.args.correction_success_threshold,
            self.args.risk_penalty,
        ))
        local_rows = len(advantages) // self.accelerator.num_processes
        start = self.accelerator.process_index * local_rows
        self._log("advantage_mean", float(advantages.mean()) if len(advantages) else 0.0)
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
        """Run the parent's generate-and-score on correction rows: groups of ``correction_num_generations``, the
        parent's metrics and completion logs diverted so they don't mix with the original rollouts', and
        environments reset without a second observation (the correction prompt already holds the anchor's)."""
        logs_before = copy.deepcopy(self._logs)
        num_generations = self.num_generations
        self.num_generations = self.args.correction_num_generations
        try:
            with self._metrics_as_corrections(), self._resets_without_observation():
                yield
        finally:
            self.num_generations = num_generations
            self._logs = logs_before

    @contextlib.contextmanager
    def _metrics_as_corrections(self) -> Iterator[None]:
        """Metrics the parent appends inside this block are moved under ``correction/<name>``."""
        metrics = self._metrics["train"]
        lengths_before = {name: len(values) for name, values in metrics.items()}
        try:
            yield
        finally:
            for name in list(metrics):
                if name.startswith("correction/") or name == "num_tokens":
                    continue
                start = lengths_before.get(name, 0)
                added = metrics[name][start:]
                del metrics[name][start:]
                if not metrics[name]:
                    del metrics[name]
                if added:
                    metrics[f"correction/{name}"].extend(added)

    def _entropy_controller_state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ENTROPY_CONTROLLER_STATE if hasattr(self, name)}

    def _set_entropy_controller_state(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    @contextlib.contextmanager
    def _resets_without_observation(self) -> Iterator[None]:
        """During the correction call, ``reset()`` still restarts each environment as for the anchor, but returns
        no observation: the parent would append it to the correction prompt a second time."""
        pools = getattr(self, "_environment_pool", None) or {}
        classes = {type(environment) for pool in pools.values() for environment in pool}
        patched = {cls: cls.__dict__.get("reset") for cls in classes}
        for cls in classes:
            reset = cls.reset

            def quiet_reset(environment: Any, *args: Any, _reset: Any = reset, **kwargs: Any) -> None:
                _reset(environment, *args, **kwargs)

            cls.reset = quiet_reset
        try:
            yield
        finally:
            for cls, own_reset in patched.items():
                if own_reset is None:
                    del cls.reset
                else:
                    cls.reset = own_reset

    # ------------------------------------------------------------------------------------- checkpoint/resume
    def cipo_state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.anchor_rng.getstate()
        return {
            "replay": self.replay.state_dict(),
            "anchor_rng": [version, list(internal), gauss],
            "correct_share_carry": self.share_rounder.carry,
        }

    def load_cipo_state_dict(self, state: dict[str, Any]) -> None:
        self.replay.load_state_dict(state["replay"])
        version, internal, gauss = state["anchor_rng"]
        self.anchor_rng.setstate((version, tuple(internal), gauss))
        self.share_rounder.carry = float(state.get("correct_share_carry", 0.0))

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:  # noqa: D401
        # Written here, inside the parent's checkpoint, so it exists before a hub push of that checkpoint.
        super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save:
            with open(os.path.join(output_dir, STATE_FILE), "w") as file:
                json.dump(self.cipo_state_dict(), file)

    def _load_optimizer_and_scheduler(self, checkpoint):  # noqa: ANN001, ANN202
        super()._load_optimizer_and_scheduler(checkpoint)
        if not checkpoint:
            return
        path = os.path.join(checkpoint, STATE_FILE)
        if os.path.exists(path):
            with open(path) as file:
                self.load_cipo_state_dict(json.load(file))
        elif self.args.use_correction:
            logger.warning(
                "CIPO: checkpoint %s has no %s; the replay ratio, its rounding carry and the anchor RNG start "
                "afresh from the configuration (ratio %.3f) instead of resuming.",
                checkpoint,
                STATE_FILE,
                self.replay.ratio,
            )


def _model_name(model: Any) -> str:
    """The name GRPOTrainer gives a default config: the model id's last path part."""
    name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
    return str(name).rstrip("/").split("/")[-1] or "model"


@contextlib.contextmanager
def _rng_state(state: torch.Tensor) -> Iterator[None]:
    """Run the block from the given CPU RNG state, then continue from where the global RNG was."""
    current = torch.get_rng_state()
    torch.set_rng_state(state)
    try:
        yield
    finally:
        torch.set_rng_state(current)


def _shuffled_chunks(batch: dict[str, Any], chunks: int) -> list[dict[str, Any]]:
    """What the parent does to its generation batch: shuffle the rows, cut them into ``chunks`` equal parts."""
    batch = shuffle_sequence_dict(split_pixel_values_by_grid(batch))
    return [unsplit_pixel_values_by_grid(part) for part in split_tensor_dict(batch, chunks)]
