"""CIPOTrainer on a tiny local Llama: one real step, hand-computed correction advantages, parity with GRPO, resume."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from cipo import CIPOConfig, CIPOTrainer
from cipo.core.advantages import STD_EPS
from cipo.trainer import CORRECTIONS, STATE_FILE

PROMPTS = [[{"role": "user", "content": f"Compute {a}+{b}."}] for a in range(4) for b in range(4)]


def arithmetic_dataset() -> Dataset:
    return Dataset.from_list([{"prompt": p, "answer": str(i)} for i, p in enumerate(PROMPTS)])


def text_of(completion) -> str:  # noqa: ANN001
    return completion[0]["content"] if isinstance(completion, list) else completion


def hash_reward(completions, **kwargs) -> list[float]:  # noqa: ANN001, ANN003
    """Deterministic, varied rewards: about half the completions score 1."""
    return [float(zlib.crc32(text_of(c).encode()) % 2) for c in completions]


def tiny_args(tmp_path: Path, config_class=CIPOConfig, **overrides) -> GRPOConfig:  # noqa: ANN001
    settings = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=6,
        max_steps=1,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        gradient_accumulation_steps=1,
    )
    if config_class is CIPOConfig:
        settings.update(correction_num_generations=2, correction_anchor_fraction=0.25)
    settings.update(overrides)
    return config_class(**settings)


def make_trainer(model_dir: Path, tmp_path: Path, reward=hash_reward, trainer_class=CIPOTrainer, **overrides):  # noqa: ANN001, ANN201
    config_class = CIPOConfig if issubclass(trainer_class, CIPOTrainer) else GRPOConfig
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)
    return trainer_class(
        model=str(model_dir),
        reward_funcs=[reward],
        args=tiny_args(tmp_path, config_class, **overrides),
        train_dataset=arithmetic_dataset(),
        processing_class=tokenizer,
    )


def test_parameters_change_after_a_step(tiny_model_dir: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tiny_model_dir, tmp_path)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    changed = [name for name, p in trainer.model.named_parameters() if not torch.equal(p, before[name])]
    assert changed, "no parameter moved after one CIPO step"
    logged = trainer.state.log_history[0]
    for key in ("num_anchors", "success_rate", "replay_ratio"):
        assert f"correction/{key}" in logged
    assert logged["correction/num_anchors"] == 2


class ScriptedReward:
    """Returns scripted rewards call by call; records the kwargs each call received."""

    __name__ = "scripted"

    def __init__(self, script: list[list[float]]) -> None:
        self.script = list(script)
        self.calls: list[dict] = []

    def __call__(self, prompts, completions, **kwargs) -> list[float]:  # noqa: ANN001, ANN003
        self.calls.append({"prompts": prompts, "completions": completions, **kwargs})
        return self.script.pop(0)


def test_correction_rows_carry_the_intended_advantages(tiny_model_dir: Path, tmp_path: Path) -> None:
    # Two prompts x 4 rollouts. Group 0 passes 1/4 (inside the band), group 1 passes 4/4 (outside).
    originals = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    # Anchors: 2 (fraction 0.25 of 8), replay 0.5 -> one correct (rollout 0, in band) and one wrong (group 0).
    # Corrections, 2 per anchor: correct anchor -> [right, wrong]; wrong anchor -> [right, wrong].
    corrections = [1.0, 0.0, 1.0, 0.0]
    reward = ScriptedReward([originals, corrections])
    trainer = make_trainer(
        tiny_model_dir, tmp_path, reward=reward, replay_ratio=0.5, correction_weight=0.5, risk_penalty=1.0
    )
    trainer.model.train()
    inputs = [{"prompt": PROMPTS[p], "answer": f"gold-{p}"} for p in (0, 1) for _ in range(4)]
    batch = trainer._generate_and_score_completions(inputs)

    assert batch["advantages"].shape == (8,)
    corrections = batch[CORRECTIONS]
    # Both groups [1, 0] -> +-0.5/(sqrt .5 + eps); then the correction that broke the correct anchor loses
    # risk_penalty (1.0). The weight (0.5) multiplies the corrections' loss, not their advantages.
    normalized = 0.5 / (math.sqrt(0.5) + STD_EPS)
    expected = [normalized, -normalized - 1.0, normalized, -normalized]
    assert corrections["advantages"].tolist() == pytest.approx(expected, rel=1e-5)

    correction_call = reward.calls[1]
    assert correction_call["answer"] == ["gold-0"] * 4  # source columns travel with the correction rows
    attempts = [prompt[-2]["content"] for prompt in correction_call["prompts"]]
    first_call = reward.calls[0]
    anchor_texts = [text_of(first_call["completions"][0])] * 2
    assert attempts[:2] == anchor_texts  # the correct anchor is rollout 0
    assert all(prompt[-1]["role"] == "user" for prompt in correction_call["prompts"])

    metrics = trainer._metrics["train"]
    assert metrics["correction/retention"] == [0.5]
    assert metrics["correction/fix_rate"] == [0.5]
    assert metrics["correction/break_rate"] == [0.5]
    assert metrics["correction/success_rate"] == [0.5]
    assert metrics["reward"] == [pytest.approx(5 / 8)]  # originals only: corrections are logged apart
    assert metrics["correction/reward"] == [pytest.approx(0.5)]
    assert trainer.replay.ratio == pytest.approx(0.5 + 0.25 * (0.9 - 0.5))
    assert batch["num_items_in_batch"].item() == batch["completion_mask"].sum().item()  # each set its own count
    assert corrections["num_items_in_batch"].item() == corrections["completion_mask"].sum().item()


def test_use_correction_false_is_plain_grpo(tiny_model_dir: Path, tmp_path: Path) -> None:
    grpo = make_trainer(tiny_model_dir, tmp_path / "grpo", trainer_class=GRPOTrainer, max_steps=2)
    cipo = make_trainer(tiny_model_dir, tmp_path / "cipo", use_correction=False, max_steps=2)
    for trainer in (grpo, cipo):
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1  # set by the training loop; compute_loss reads it
    inputs = [{"prompt": PROMPTS[p], "answer": str(p)} for p in (0, 1) for _ in range(4)]
    torch.manual_seed(1)
    grpo_batch = grpo._generate_and_score_completions(inputs)
    torch.manual_seed(1)
    cipo_batch = cipo._generate_and_score_completions(inputs)
    assert grpo_batch.keys() == cipo_batch.keys()
    for key, value in grpo_batch.items():
        assert torch.equal(value, cipo_batch[key]), key
    assert torch.equal(grpo.compute_loss(grpo.model, grpo_batch), cipo.compute_loss(cipo.model, grpo_batch))

    for trainer in (grpo, cipo):  # same RNG state at the start of each run
        torch.manual_seed(2)
        trainer.train()
    for (name, p_grpo), (_, p_cipo) in zip(grpo.model.named_parameters(), cipo.model.named_parameters(), strict=True):
        assert torch.equal(p_grpo, p_cipo), name
    assert not any(key.startswith("correction/") for entry in cipo.state.log_history for key in entry)


def test_resume_continues_the_same_trajectory(tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = dict(
        max_steps=4, save_strategy="steps", save_steps=2, replay_step_size=0.5, correction_anchor_fraction=0.5
    )
    straight = make_trainer(tiny_model_dir, tmp_path / "straight", **settings)
    straight.train()
    assert straight.replay.num_updates > 0, "the test needs the replay ratio to move"

    # The uninterrupted run saved checkpoint-2 on its way: resume from it in a fresh trainer.
    checkpoint = Path(straight.args.output_dir) / "checkpoint-2"
    assert (checkpoint / STATE_FILE).exists()

    resumed = make_trainer(tiny_model_dir, tmp_path / "resumed", **settings)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.replay.state_dict() == straight.replay.state_dict()
    assert resumed.anchor_rng.getstate() == straight.anchor_rng.getstate()
    for (name, p_a), (_, p_b) in zip(
        straight.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(p_a, p_b, msg=f"{name} differs after resume")


def test_model_loads_through_from_pretrained(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama"


def test_opt_in_feedback_goes_into_the_instruction(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cipo.rewards
    from cipo.core.prompts import DEFAULT_INSTRUCTION, FEEDBACK_INTRO

    seen: dict = {}

    def fake_feedback(completions, answer, **kwargs) -> list[str]:  # noqa: ANN001, ANN003
        seen["answer"] = answer
        return [f"checked against {gold}" for gold in answer]

    monkeypatch.setitem(cipo.rewards._FEEDBACK, "fake", fake_feedback)
    reward = ScriptedReward([[1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    trainer = make_trainer(tiny_model_dir, tmp_path, reward=reward, replay_ratio=0.5, correction_feedback="fake")
    trainer.model.train()
    trainer._generate_and_score_completions([{"prompt": PROMPTS[p], "answer": f"g{p}"} for p in (0, 1) for _ in range(4)])
    instruction = reward.calls[1]["prompts"][0][-1]["content"]
    assert instruction == f"{FEEDBACK_INTRO}\nchecked against g0\n\n{DEFAULT_INSTRUCTION}"
    assert seen["answer"] == ["g0", "g0"]


def test_originals_keep_their_own_padding(tiny_model_dir: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tiny_model_dir, tmp_path)
    trainer.model.train()
    inputs = [{"prompt": PROMPTS[p], "answer": str(p)} for p in (0, 1) for _ in range(4)]
    batch = trainer._generate_and_score_completions(inputs)
    corrections = batch[CORRECTIONS]
    assert len(batch["advantages"]) == 8 and len(corrections["advantages"]) == 4  # 2 anchors x 2 corrections
    # Correction prompts (prompt + attempt + instruction) are longer; the originals are not padded to them.
    assert batch["prompt_ids"].shape[1] < corrections["prompt_ids"].shape[1]


def test_too_small_micro_batch_cap_is_rejected(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="correction_micro_batch=1 admits 0 anchors"):
        make_trainer(tiny_model_dir, tmp_path, correction_micro_batch=1, correction_num_generations=4)


def test_gradient_accumulation_keeps_chunks_even(tiny_model_dir: Path, tmp_path: Path) -> None:
    # steps_per_generation 2 and 3 corrections per anchor: anchors must come in pairs (unit 2 / gcd(3, 2) = 2)
    trainer = make_trainer(
        tiny_model_dir, tmp_path, gradient_accumulation_steps=2, per_device_train_batch_size=4,
        correction_num_generations=3, correction_anchor_fraction=0.125,
    )  # fmt: skip
    trainer.train()
    anchors = trainer.state.log_history[0]["correction/num_anchors"]
    assert anchors == 2  # 0.125 x 8 rollouts = 1, rounded to the unit
    assert len(trainer._buffered_inputs) == 2
    assert [len(chunk["advantages"]) for chunk in trainer._buffered_inputs] == [4, 4]  # 8 originals / 2
    assert [len(chunk[CORRECTIONS]["advantages"]) for chunk in trainer._buffered_inputs] == [3, 3]  # 2 x 3 / 2


def test_adaptive_entropy_steps_once_per_optimizer_step(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    # TRL's controller raises entropy_coef by entropy_coef_delta at each optimizer-step boundary while entropy is
    # below entropy_target; the corrections' loss call must neither step it again nor apply another coefficient.
    applied: list[float] = []  # the entropy coefficient each parent loss call applies
    parent_loss = GRPOTrainer._compute_loss

    def recording_loss(self, model, inputs):  # noqa: ANN001, ANN202
        coefficient = self.entropy_coef if self._last_world_entropy <= self.args.entropy_target else 0.0
        applied.append(coefficient)
        return parent_loss(self, model, inputs)

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", recording_loss)
    trainer = make_trainer(
        tiny_model_dir, tmp_path, max_steps=2, gradient_accumulation_steps=2, per_device_train_batch_size=4,
        use_adaptive_entropy=True, entropy_coef=0.01, entropy_target=15.0, entropy_coef_delta=0.005,
    )  # fmt: skip
    trainer.train()
    assert trainer.entropy_coef == pytest.approx(0.01 + 2 * 0.005)
    assert len(applied) == 2 * 2 * 2  # steps x micro-batches x (originals, corrections)
    # Step 1 applies none (TRL gates the bonus until a first entropy is measured), step 2 the coefficient after one
    # boundary; both calls of every micro-batch apply the same.
    assert applied == pytest.approx([0.0] * 4 + [0.015] * 4)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_logged_loss_is_both_terms_with_their_entropy_bonus(tiny_model_dir: Path, tmp_path: Path, loss_type: str) -> None:
    # TRL logs policy_loss and entropy of the originals (CIPO: correction/... for the corrections); the logged loss
    # is the joint L = (policy - c * H) + w * (correction policy - c * correction H).
    coef, weight = 0.5, 0.5
    trainer = make_trainer(tiny_model_dir, tmp_path, max_steps=2, loss_type=loss_type, entropy_coef=coef,
                           correction_weight=weight)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "correction/policy_loss" in entry]
    assert len(logs) == 2
    for entry in logs:
        originals = entry["policy_loss"] - coef * entry["entropy"]
        corrections = entry["correction/policy_loss"] - coef * entry["correction/entropy"]
        assert entry["loss"] == pytest.approx(originals + weight * corrections, abs=1e-3)


def test_reward_funcs_is_optional_as_in_grpo_trainer(tiny_model_dir: Path, tmp_path: Path) -> None:
    # GRPOTrainer takes reward_funcs=None (an environment may own the reward) and says so when none is anywhere;
    # CIPOTrainer must reach that same check, not fail on its own signature.
    with pytest.raises(ValueError, match="No reward source provided"):
        CIPOTrainer(model=str(tiny_model_dir), args=tiny_args(tmp_path), train_dataset=arithmetic_dataset())
