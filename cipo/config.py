"""``CIPOConfig``: TRL's ``GRPOConfig`` plus the correction fields.

Every CIPO mechanism can be switched off; with ``use_correction=False`` the trainer is plain GRPO. Defaults marked
"(open)" are our choices where the paper (arXiv 2605.14539) gives no constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from cipo.core.advantages import SCALE_OPTIONS
from cipo.core.prompts import DEFAULT_INSTRUCTION, LAYOUTS, validate_text_template


@dataclass
class CIPOConfig(GRPOConfig):
    r"""Configuration of [`CIPOTrainer`]: every field of `GRPOConfig`, plus the ones below."""

    use_correction: bool = field(
        default=True,
        metadata={"help": "Train on self-correction samples alongside the GRPO rollouts. False = plain GRPO."},
    )
    correction_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight w of the correction term in the joint loss L_GRPO(originals) + w * "
            "L_GRPO(corrections); each term is normalised as GRPO normalises that set of rows alone. 0 trains on "
            "the originals exactly as GRPO. (open)"
        },
    )
    correction_num_generations: int = field(
        default=4,
        metadata={"help": "Corrections sampled per anchor; they form the anchor's advantage group. (open)"},
    )
    correction_anchor_fraction: float = field(
        default=0.125,
        metadata={
            "help": "Share of the step's rollouts used as anchors. The count is rounded to a multiple of the unit "
            "that keeps ranks and accumulation chunks even (processes x steps_per_generation / "
            "gcd(correction_num_generations, steps_per_generation)). (open)"
        },
    )
    replay_ratio: float = field(
        default=0.25,
        metadata={"help": "Initial share of anchors that are correct attempts (replay). (open)"},
    )
    adaptive_replay: bool = field(
        default=True,
        metadata={"help": "Adapt replay_ratio to retention after every step; False keeps it fixed."},
    )
    retention_target: float = field(
        default=0.9,
        metadata={
            "help": "Target share of corrections of correct anchors that stay correct. Below it the replay ratio "
            "rises, above it falls. (open)"
        },
    )
    replay_ratio_bounds: list[float] = field(
        default_factory=lambda: [0.05, 0.75],
        metadata={"help": "Lower and upper bound of the adaptive replay ratio. (open)"},
    )
    replay_step_size: float = field(
        default=0.25,
        metadata={"help": "Gain of the replay rule: ratio += step * (retention_target - retention). (open)"},
    )
    risk_penalty: float = field(
        default=1.0,
        metadata={
            "help": "Subtracted from the group-normalized advantage of a correction that turns a correct anchor wrong "
            "(on the advantage: group normalization would cancel a reward penalty shared by an anchor's whole group). "
            "0 switches risk-averse shaping off. (open)"
        },
    )
    difficulty_band: list[float] = field(
        default_factory=lambda: [0.25, 0.75],
        metadata={
            "help": "Group pass-rate band preferred for anchors (near misses); other groups fill remaining slots "
            "by distance to the band. [0, 1] switches the preference off. (open)"
        },
    )
    correction_template: str | None = field(
        default=None,
        metadata={
            "help": "For plain-text prompts: template with {prompt} and {attempt} slots (and optionally "
            "{instruction}). Conversational prompts continue the conversation instead."
        },
    )
    correction_layout: str = field(
        default="auto",
        metadata={
            "help": "Conversational prompts: 'conversation' continues the chat (attempt as the assistant turn, "
            "instruction as a new user turn); 'user_turn' quotes the attempt in the last user message; 'auto' "
            "renders the chat template once and picks 'user_turn' when it drops <think> reasoning of earlier "
            "assistant turns (Qwen3), else 'conversation'. Tool-calling attempts always continue the chat."
        },
    )
    correction_instruction: str = field(
        default=DEFAULT_INSTRUCTION,
        metadata={"help": "The review-and-fix request. It must not reveal whether the attempt was right."},
    )
    correction_feedback: str | None = field(
        default=None,
        metadata={
            "help": "Opt-in beyond the paper: name of a feedback function ('code': first failing test and its "
            "error) or 'package.module:function', whose text is put before the instruction in correction "
            "prompts. None = no external signal, as in the paper."
        },
    )
    correction_max_attempt_tokens: int | None = field(
        default=512,
        metadata={"help": "Attempts longer than this many tokens keep only their end. None = no limit."},
    )
    correction_micro_batch: int | None = field(
        default=None,
        metadata={
            "help": "Most correction rows added to each per-device micro-batch (caps the anchor budget), so the "
            "extra activation memory of a training forward is bounded. None = no cap."
        },
    )
    correction_success_threshold: float = field(
        default=0.5,
        metadata={"help": "A rollout counts as correct when its total weighted reward is at least this."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._validate_correction_fields()

    def _validate_correction_fields(self) -> None:
        _check(self.correction_weight >= 0, "correction_weight", self.correction_weight, "must be >= 0")
        _check(
            isinstance(self.correction_num_generations, int) and self.correction_num_generations >= 2,
            "correction_num_generations",
            self.correction_num_generations,
            "must be an integer >= 2 (advantages are normalized within each anchor's group)",
        )
        _check(
            0.0 <= self.correction_anchor_fraction <= 1.0,
            "correction_anchor_fraction",
            self.correction_anchor_fraction,
            "must lie in [0, 1]",
        )
        _check(0.0 <= self.replay_ratio <= 1.0, "replay_ratio", self.replay_ratio, "must lie in [0, 1]")
        _check(0.0 <= self.retention_target <= 1.0, "retention_target", self.retention_target, "must lie in [0, 1]")
        _check(self.replay_step_size >= 0, "replay_step_size", self.replay_step_size, "must be >= 0")
        _check(self.risk_penalty >= 0, "risk_penalty", self.risk_penalty, "must be >= 0 (it is applied negated)")
        _check_interval("replay_ratio_bounds", self.replay_ratio_bounds)
        _check_interval("difficulty_band", self.difficulty_band)
        low, high = self.replay_ratio_bounds
        _check(low <= self.replay_ratio <= high, "replay_ratio", self.replay_ratio, f"must lie in replay_ratio_bounds {self.replay_ratio_bounds}")
        _check(self.correction_layout in LAYOUTS, "correction_layout", self.correction_layout, f"must be one of {LAYOUTS}")
        if self.correction_template is not None:
            try:
                validate_text_template(self.correction_template)
            except ValueError as error:
                raise ValueError(f"CIPOConfig.correction_template: {error}") from error
        if self.correction_max_attempt_tokens is not None:
            _check(
                self.correction_max_attempt_tokens > 0,
                "correction_max_attempt_tokens",
                self.correction_max_attempt_tokens,
                "must be > 0 or None",
            )
        if self.correction_micro_batch is not None:
            _check(
                self.correction_micro_batch >= 0, "correction_micro_batch", self.correction_micro_batch, "must be >= 0"
            )
        _check(
            self.scale_rewards in SCALE_OPTIONS, "scale_rewards", self.scale_rewards, f"must be one of {SCALE_OPTIONS}"
        )


def _check(condition: bool, name: str, value: object, requirement: str) -> None:
    if not condition:
        raise ValueError(f"CIPOConfig.{name} {requirement}; got {value!r}")


def _check_interval(name: str, value: object) -> None:
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
        and 0.0 <= value[0] <= value[1] <= 1.0
    )
    _check(ok, name, value, "must be two numbers [low, high] with 0 <= low <= high <= 1")
