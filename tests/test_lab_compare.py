"""The lab's training runs: ``rl.trainable_layers`` trains the top layers only, through the real trainer."""

from __future__ import annotations

import torch
from tiny_models import save_tiny_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from cipo.lab.compare import RLConfig, rl_dataset, train_policy
from cipo.lab.task_api import MathTask
from cipo.lab.tasks import TaskConfig, take_train_problems


class ParityTask(MathTask):
    """The random tiny model never solves a sum; a reward that varies gives the groups a signal to learn from."""

    def reward(self, completions: list, **kwargs) -> list[float]:
        return [float(len(str(completion)) % 2) for completion in completions]


def test_trainable_layers_moves_the_top_layer_only(tmp_path):
    path = save_tiny_model(tmp_path / "model", num_layers=2)
    before = AutoModelForCausalLM.from_pretrained(path).state_dict()
    config = RLConfig(steps=2, prompts_per_step=2, num_generations=4, max_completion_length=12, learning_rate=1e-2,
                      correction_num_generations=2, correction_anchor_fraction=0.25, trainable_layers=1)
    problems = take_train_problems(TaskConfig(levels=(0,)), "rl", 4, set())
    result, _ = train_policy("test", path, AutoTokenizer.from_pretrained(path), rl_dataset(problems), config,
                             use_correction=True, seed=0, output_dir=tmp_path / "out", max_steps=2,
                             show_progress=False, task=ParityTask())
    after = result.model.state_dict()
    moved = {name for name, value in after.items() if not torch.equal(value, before[name])}
    assert moved, "nothing was trained"
    assert all(name.startswith(("model.layers.1.", "model.norm.")) for name in moved), sorted(moved)
