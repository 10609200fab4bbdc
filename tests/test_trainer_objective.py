"""The joint objective the README promises, tested on real steps of a tiny model:

    L = L_GRPO(originals) + correction_weight x L_GRPO(corrections)

each term normalised exactly as TRL's GRPOTrainer normalises that set of rows alone, for every loss_type; every
micro-batch holds the same number of correction rows; importance ratios are 1 before an update on an
absolute-position model (GPT-2); resume, default config and checkpoint contents.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from test_trainer import PROMPTS, ScriptedReward, arithmetic_dataset, hash_reward, make_trainer
from tiny_models import save_tiny_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from cipo import CIPOConfig, CIPOTrainer
from cipo.trainer import CORRECTIONS, STATE_FILE

# Every loss_type TRL 1.16's GRPOTrainer accepts, with the settings it requires.
LOSS_TYPES = {
    "grpo": {},
    "bnpo": {},
    "dr_grpo": {},
    "dapo": {},
    "cispo": {},
    "sapo": {},
    "luspo": {"importance_sampling_level": "sequence"},
    "vespo": {},
}


def one_sgd_step(model_dir: Path, tmp_path: Path, **overrides) -> CIPOTrainer:  # noqa: ANN003
    trainer = make_trainer(model_dir, tmp_path, optim="sgd", learning_rate=0.5, max_grad_norm=0.0, **overrides)
    torch.manual_seed(2)
    trainer.train()
    return trainer


def update(trainer: CIPOTrainer, model_dir: Path) -> torch.Tensor:
    initial = AutoModelForCausalLM.from_pretrained(model_dir)
    return torch.cat([(p - q).flatten() for p, q in zip(trainer.model.parameters(), initial.parameters(), strict=True)])


def assert_same_update(first: CIPOTrainer, second: CIPOTrainer, model_dir: Path) -> None:
    """The two optimizer steps agree up to float summation order (a diluted objective is off by 30% or more)."""
    first_update, second_update = update(first, model_dir), update(second, model_dir)
    assert first_update.norm() > 0, "the step must move the parameters for the comparison to mean anything"
    assert (first_update - second_update).norm() / first_update.norm() < 1e-4


@pytest.mark.parametrize("loss_type", sorted(LOSS_TYPES))
def test_weight_zero_trains_the_originals_exactly_as_grpo(
    tiny_model_dir: Path, tmp_path: Path, loss_type: str
) -> None:
    settings = {"loss_type": loss_type, **LOSS_TYPES[loss_type]}
    grpo = one_sgd_step(tiny_model_dir, tmp_path / "grpo", use_correction=False, **settings)
    cipo = one_sgd_step(tiny_model_dir, tmp_path / "cipo", correction_weight=0.0, **settings)
    logged = cipo.state.log_history[0]
    assert logged["correction/num_anchors"] == 2, "corrections must be generated and appended"
    assert "correction/entropy" in logged, "the corrections' loss term must have run"
    assert_same_update(grpo, cipo, tiny_model_dir)


@pytest.mark.parametrize("loss_type", sorted(LOSS_TYPES))
def test_weight_zero_is_grpo_per_micro_batch(tiny_model_dir: Path, tmp_path: Path, loss_type: str) -> None:
    # Two micro-batches per optimizer step: the originals are cut into GRPO's own micro-batches (bnpo normalises
    # per micro-batch, and TRL's gradient itself differs by ~1e-3 between partitions of the same rows).
    settings = dict(loss_type=loss_type, gradient_accumulation_steps=2, per_device_train_batch_size=4)
    settings.update(LOSS_TYPES[loss_type])
    grpo = one_sgd_step(tiny_model_dir, tmp_path / "grpo", use_correction=False, **settings)
    cipo = one_sgd_step(tiny_model_dir, tmp_path / "cipo", correction_weight=0.0, **settings)
    assert cipo.state.log_history[0]["correction/num_anchors"] == 2
    assert_same_update(grpo, cipo, tiny_model_dir)


def gradients(model: torch.nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


@pytest.mark.parametrize("loss_type", sorted(LOSS_TYPES))
def test_joint_gradient_is_grpo_plus_weighted_correction_gradient(
    tiny_model_dir: Path, tmp_path: Path, loss_type: str
) -> None:
    weight = 0.5
    # Scripted rewards: both prompts' groups mixed, and each anchor's two corrections differ, so no advantage is 0.
    reward = ScriptedReward([[1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]])
    trainer = make_trainer(
        tiny_model_dir, tmp_path, reward=reward, loss_type=loss_type, beta=0.1, correction_weight=weight,
        **LOSS_TYPES[loss_type],
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; the loss reads it
    inputs = [{"prompt": PROMPTS[p], "answer": str(p)} for p in (0, 1) for _ in range(4)]
    batch = trainer._generate_and_score_completions(inputs)
    originals = {key: value for key, value in batch.items() if key != CORRECTIONS}
    corrections = batch[CORRECTIONS]
    assert corrections["ref_per_token_logps"] is not None  # the KL term is part of both losses

    model = trainer.model
    joint = gradients(model, trainer._compute_loss(model, batch))
    alone = gradients(model, GRPOTrainer._compute_loss(trainer, model, originals))
    extra = gradients(model, GRPOTrainer._compute_loss(trainer, model, corrections))
    assert any(g.abs().sum() > 0 for g in extra), "the corrections' gradient must not vanish"
    for g_joint, g_alone, g_extra in zip(joint, alone, extra, strict=True):
        torch.testing.assert_close(g_joint, g_alone + weight * g_extra, atol=1e-6, rtol=1e-4)


class RecordingTrainer(CIPOTrainer):
    """Records, for each loss call, the rows of each set and the ratio/KL a fresh forward gives before updates."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.micro_batches: list[tuple[int, int]] = []
        self.ratio_errors: list[float] = []
        self.kl_values: list[float] = []

    def _compute_loss(self, model, inputs):  # noqa: ANN001, ANN202
        corrections = inputs.get(CORRECTIONS)
        self.micro_batches.append((len(inputs["advantages"]), 0 if corrections is None else len(corrections["advantages"])))
        if self.state.global_step == 0:
            for part in (inputs, corrections):
                if part is not None and part.get("old_per_token_logps") is not None:
                    self._check_ratio(model, part)
        return super()._compute_loss(model, inputs)

    def _check_ratio(self, model, part) -> None:  # noqa: ANN001
        input_ids = torch.cat([part["prompt_ids"], part["completion_ids"]], dim=1)
        mask = torch.cat([part["prompt_mask"], part["completion_mask"]], dim=1)
        logps, _, _ = self._get_per_token_logps_and_entropies(model, input_ids, mask, part["completion_ids"].size(1))
        real = part["completion_mask"].bool()
        self.ratio_errors.append(float((logps - part["old_per_token_logps"])[real].exp().sub(1).abs().max()))
        self.kl_values.append(float((logps - part["ref_per_token_logps"])[real].abs().max()))


def test_ratio_is_one_and_kl_zero_before_the_first_update_on_gpt2(tmp_path: Path) -> None:
    # GPT-2's learned absolute positions include the left padding: any forward that pads a row differently from
    # the one that computed its old/reference log-probs shows up here as a ratio away from 1.
    model_dir = save_tiny_model(tmp_path / "gpt2", architecture="gpt2")
    trainer = RecordingTrainer(
        model=str(model_dir),
        reward_funcs=[hash_reward],
        args=CIPOConfig(
            output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, gradient_accumulation_steps=2,
            num_generations=4, max_completion_length=6, max_steps=1, num_iterations=2, beta=0.1,
            correction_num_generations=2, correction_anchor_fraction=0.25, learning_rate=1e-2,
            report_to=[], save_strategy="no", use_cpu=True, seed=0,
        ),  # fmt: skip
        train_dataset=arithmetic_dataset(),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    trainer.train()
    assert len(trainer.ratio_errors) == 4, "two micro-batches, each with originals and corrections"
    assert max(trainer.ratio_errors) < 1e-5
    assert max(trainer.kl_values) < 1e-5


def test_every_micro_batch_holds_the_same_number_of_correction_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    trainer = make_trainer(
        tiny_model_dir, tmp_path, trainer_class=RecordingTrainer, gradient_accumulation_steps=4,
        per_device_train_batch_size=4, correction_anchor_fraction=0.5, correction_micro_batch=2, max_steps=2,
    )  # fmt: skip
    trainer.train()
    assert len(trainer.micro_batches) == 8  # 2 optimizer steps x 4 micro-batches
    assert {originals for originals, _ in trainer.micro_batches} == {4}
    # The cap (2 rows per micro-batch, 2 corrections per anchor) admits 4 anchors of the 8 the fraction asks for.
    assert {corrections for _, corrections in trainer.micro_batches} == {2}


def test_checkpoint_holds_the_cipo_state_before_a_hub_push(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = make_trainer(tiny_model_dir, tmp_path, save_strategy="steps", save_steps=1)
    pushed: list[bool] = []
    trainer.args.push_to_hub = True  # set after init: no hub repository is created
    monkeypatch.setattr(trainer, "_push_from_checkpoint", lambda folder: pushed.append((Path(folder) / STATE_FILE).exists()))
    trainer.train()
    assert pushed == [True]
    state = json.loads((Path(trainer.args.output_dir) / "checkpoint-1" / STATE_FILE).read_text())
    assert set(state) == {"replay", "anchor_rng", "correct_share_carry"}


def test_resume_keeps_the_configured_replay_hyperparameters(tiny_model_dir: Path, tmp_path: Path) -> None:
    first = make_trainer(tiny_model_dir, tmp_path / "a", max_steps=1, save_strategy="steps", save_steps=1)
    first.train()
    checkpoint = Path(first.args.output_dir) / "checkpoint-1"
    resumed = make_trainer(
        tiny_model_dir, tmp_path / "b", max_steps=2, replay_step_size=0.05, retention_target=0.5,
        adaptive_replay=False, replay_ratio=0.1, replay_ratio_bounds=[0.1, 0.2],
    )  # fmt: skip
    resumed.train(resume_from_checkpoint=str(checkpoint))
    replay = resumed.replay
    assert (replay.step_size, replay.retention_target, replay.adaptive) == (0.05, 0.5, False)
    assert replay.bounds == (0.1, 0.2) and 0.1 <= replay.ratio <= 0.2
    assert replay.num_updates == first.replay.num_updates  # state restored, not reset


def test_resume_without_cipo_state_says_so(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = make_trainer(tiny_model_dir, tmp_path / "a", max_steps=1, save_strategy="steps", save_steps=1)
    first.train()
    checkpoint = Path(first.args.output_dir) / "checkpoint-1"
    (checkpoint / STATE_FILE).unlink()
    resumed = make_trainer(tiny_model_dir, tmp_path / "b", max_steps=2)
    with caplog.at_level(logging.WARNING, logger="cipo.trainer"):
        resumed.train(resume_from_checkpoint=str(checkpoint))
    assert any(STATE_FILE in record.getMessage() for record in caplog.records)


def test_args_default_to_a_cipo_config(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # Like GRPOConfig, CIPOConfig defaults to bf16, which TrainingArguments refuses on a CPU-only machine.
    monkeypatch.setattr("transformers.training_args.is_torch_bf16_gpu_available", lambda: True)
    trainer = CIPOTrainer(model=str(tiny_model_dir), reward_funcs=hash_reward, train_dataset=arithmetic_dataset())
    assert isinstance(trainer.args, CIPOConfig)
    assert Path(trainer.args.output_dir).name == f"{tiny_model_dir.name}-CIPO"
    with pytest.raises(TypeError, match="CIPOConfig"):
        CIPOTrainer(model=str(tiny_model_dir), reward_funcs=hash_reward, args=GRPOConfig("x", use_cpu=True))


def test_model_names_resolve_like_everywhere_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIPO_CACHE", str(tmp_path / "cache"))
    args = CIPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to=[], per_device_train_batch_size=8,
                      num_generations=4, correction_num_generations=2)
    trainer = CIPOTrainer(model="builtin:tiny-llama", reward_funcs=hash_reward, args=args, train_dataset=arithmetic_dataset())
    assert trainer.model.config.model_type == "llama"
