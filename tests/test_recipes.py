"""The recipes in examples/: every file loads the way its launcher loads it, every launch command in a file's
header is documented and divides the batch evenly for its process count, and the LoRA recipe runs on a tiny model.

GPU-only settings (bf16) are parsed with ``--use_cpu true`` added, which is the only change made for this CPU.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ACCELERATE_CONFIGS = sorted((EXAMPLES / "accelerate").glob("*.yaml"))
CIPO_RECIPES = sorted(EXAMPLES.glob("*.yaml"))
SCALING_DOC = ROOT / "docs" / "scaling.md"
COMMAND_STARTS = ("accelerate launch", "cipo train", "trl vllm-serve", "CUDA_VISIBLE_DEVICES=")

# What each accelerate config must be, by file name.
EXPECTED_MODES = {
    "single_gpu.yaml": "NO",
    "ddp.yaml": "MULTI_GPU",
    "fsdp2.yaml": "FSDP",
    "zero3.yaml": "DEEPSPEED",
    "multi_node.yaml": "DEEPSPEED",
}


def header_commands(path: Path) -> list[str]:
    """Shell commands in the file's leading comment block, continuation lines joined, whitespace normalized."""
    commands, current = [], None
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        if current is None and not text.startswith(COMMAND_STARTS):
            continue
        piece = text.removesuffix("\\").strip()
        current = piece if current is None else f"{current} {piece}"
        if not text.endswith("\\"):
            commands.append(" ".join(current.split()))
            current = None
    return commands


def _normalized(text: str) -> str:
    return " ".join(text.replace("\\\n", " ").split())


def split_command(command: str) -> tuple[list[str], list[str]]:
    """(accelerate launch arguments, cipo train arguments) of a launch command."""
    words = shlex.split(command)
    if "train" not in words:
        return [], []
    train = words.index("train")
    if "launch" in words:
        launch = words.index("launch")
        module = words.index("-m") if "-m" in words else train - 1
        return words[launch + 1 : module], words[train + 1 :]
    return [], words[train + 1 :]


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def parse_cipo_args(args: list[str]) -> tuple:
    from trl import ModelConfig, TrlParser

    from cipo.config import CIPOConfig
    from cipo.data import DataArguments

    parser = TrlParser((DataArguments, CIPOConfig, ModelConfig), prog="cipo train")
    # bf16 is refused on a machine without a GPU unless use_cpu is set: the one concession to this CPU.
    return parser.parse_args_and_config(args=[*args, "--use_cpu", "true"])


# ------------------------------------------------------------------------------------- accelerate configs
@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_loads_with_the_keys_its_mode_needs(path: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type.value == EXPECTED_MODES[path.name]
    assert config.mixed_precision in ("no", "bf16", "fp16")
    assert config.num_processes >= 1 and config.num_processes % config.num_machines == 0
    launch_options = {action.dest for action in launch_command_parser()._actions}
    for key in [*config.fsdp_config, *config.deepspeed_config]:
        assert key in launch_options, f"{path.name}: accelerate launch does not know {key!r}"

    mode = config.distributed_type.value
    if mode == "NO":
        assert config.num_processes == 1
    if mode == "MULTI_GPU":
        assert config.num_processes >= 2
    if mode == "FSDP":
        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    if mode == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 3
        # A pinned value would clash with the CIPO config's gradient_accumulation_steps; absent = "auto".
        assert "gradient_accumulation_steps" not in config.deepspeed_config
    if config.num_machines > 1:
        assert config.main_process_ip and config.main_process_port
        assert config.deepspeed_config.get("deepspeed_multinode_launcher") == "standard"


# ------------------------------------------------------------------------------------------ CIPO configs
@pytest.mark.parametrize("path", CIPO_RECIPES, ids=lambda p: p.name)
def test_cipo_recipe_parses_like_cipo_train(path: Path) -> None:
    from cipo.rewards import get_reward, registered_rewards

    assert isinstance(yaml.safe_load(path.read_text()), dict)
    data_args, config, model_args = parse_cipo_args(["--config", str(path)])
    assert model_args.model_name_or_path
    assert config.use_correction
    assert set(data_args.reward_funcs) <= set(registered_rewards())
    assert all(callable(get_reward(name)) for name in data_args.reward_funcs)
    assert config.generation_batch_size % config.num_generations == 0
    if config.use_vllm:
        assert config.vllm_mode in ("colocate", "server")
    if model_args.use_peft:
        assert model_args.lora_r > 0 and model_args.lora_target_modules


@pytest.mark.parametrize("path", [*ACCELERATE_CONFIGS, *CIPO_RECIPES], ids=lambda p: p.name)
def test_recipe_has_a_documented_launch_command(path: Path) -> None:
    commands = header_commands(path)
    relative = path.relative_to(ROOT).as_posix()
    flag = "--config_file" if path.parent.name == "accelerate" else "--config"
    assert any(f"{flag} {relative}" in command for command in commands), f"{relative}: no launch command"
    doc = _normalized(SCALING_DOC.read_text())
    for command in commands:
        assert command in doc, f"docs/scaling.md lacks the command from {relative}:\n{command}"


def _launches() -> list[tuple[str, str]]:
    return [
        (path.relative_to(ROOT).as_posix(), command)
        for path in [*ACCELERATE_CONFIGS, *CIPO_RECIPES]
        for command in header_commands(path)
        if split_command(command)[1]
    ]


LAUNCHES = _launches()


@pytest.mark.parametrize(
    ("source", "command"), LAUNCHES, ids=[f"{Path(source).name}-{i}" for i, (source, _) in enumerate(LAUNCHES)]
)
def test_launch_command_divides_the_batch_evenly(source: str, command: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    from cipo.core.anchors import anchor_budget

    launch_args, train_args = split_command(command)
    processes = 1
    if launch_args:
        accelerate_config = load_config_from_file(str(ROOT / _flag(launch_args, "--config_file")))
        processes = int(_flag(launch_args, "--num_processes") or accelerate_config.num_processes)
    train_args = [str(ROOT / arg) if arg.startswith("examples/") else arg for arg in train_args]
    _, config, _ = parse_cipo_args(train_args)

    chunks = config.steps_per_generation
    rollouts = config.per_device_train_batch_size * processes * chunks
    assert rollouts % config.num_generations == 0, f"{source}: {rollouts} rollouts, groups of {config.num_generations}"
    unit = processes * chunks // math.gcd(config.correction_num_generations, chunks)
    cap = None
    if config.correction_micro_batch is not None:
        cap = config.correction_micro_batch * chunks * processes // config.correction_num_generations
    anchors = anchor_budget(rollouts, config.correction_anchor_fraction, unit, cap)
    assert anchors > 0, f"{source}: no anchors with {processes} processes ({command})"
    wanted = config.correction_anchor_fraction * rollouts
    assert anchors == wanted, f"{source}: anchors rounded from {wanted:g} to {anchors} with {processes} processes"


# ------------------------------------------------------------------------------------------ runnable ones
def test_lora_recipe_trains_an_adapter_with_corrections(tiny_model_dir: Path, tmp_path: Path) -> None:
    from cipo.cli import main

    output = tmp_path / "lora"
    # The recipe's PEFT and CIPO settings unchanged; model, data and sizes shrunk to a 2-step CPU run.
    status = main(
        [
            "train",
            "--config", str(EXAMPLES / "cipo_lora.yaml"),
            "--model_name_or_path", str(tiny_model_dir),
            "--dtype", "float32",
            "--dataset_name", "builtin:arithmetic",
            "--prompt_column", "prompt",
            "--answer_column", "answer",
            "--per_device_train_batch_size", "8",
            "--gradient_accumulation_steps", "1",
            "--num_generations", "4",
            "--correction_num_generations", "4",
            "--correction_anchor_fraction", "0.5",
            "--max_completion_length", "8",
            "--correction_max_attempt_tokens", "8",
            "--max_steps", "2",
            "--save_strategy", "steps",
            "--save_steps", "2",
            "--bf16", "false",
            "--use_cpu", "true",
            "--disable_tqdm", "true",
            "--output_dir", str(output),
        ]
    )  # fmt: skip
    assert status == 0
    assert (output / "adapter_config.json").exists()
    assert not (output / "model.safetensors").exists(), "LoRA run saved full weights instead of the adapter"
    history = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    anchors = [entry["correction/num_anchors"] for entry in history if "correction/num_anchors" in entry]
    assert anchors and all(count > 0 for count in anchors)
