"""Local stand-ins for the hub ids TRL's GRPO tests load, so the tests run offline.

Models are written into a Hugging Face hub cache layout (``models--org--name/snapshots/<rev>``), so every loader
(``AutoModel*``, ``AutoTokenizer``, TRL's own helpers) finds them with ``HF_HUB_OFFLINE=1``, whatever the working
directory. They come from the project's one tiny-model builder (``cipo.builtin_models``): a character tokenizer with
the chat template TRL ships for the family (Qwen2.5's for Qwen2 and Llama, so TRL recognises it for tool calling;
Qwen3's for Qwen3) and a random two-layer model.
Datasets of the same shape as ``trl-internal-testing/zen`` are written as parquet files, one folder per config.
"""

from __future__ import annotations

from pathlib import Path

STANDIN_REVISION = "0" * 40
# hub id -> (architecture, head): only the ids the tests use most; others are absent and fail alike in every mode.
STANDIN_MODELS = {
    "trl-internal-testing/tiny-Qwen2ForCausalLM-2.5": ("qwen2", "causal"),
    "trl-internal-testing/tiny-Qwen2ForSequenceClassification-2.5": ("qwen2", "classification"),
    "trl-internal-testing/tiny-LlamaForCausalLM-3.2": ("llama", "causal"),
    "trl-internal-testing/tiny-LlamaForSequenceClassification-3.2": ("llama", "classification"),
    "trl-internal-testing/tiny-Qwen3ForCausalLM": ("qwen3", "causal"),
    "trl-internal-testing/tiny-Qwen3ForSequenceClassification": ("qwen3", "classification"),
}
# The chat template TRL ships for each architecture (Qwen3's handles <think> and enable_thinking).
CHAT_TEMPLATES = {"qwen2": "qwen2_5.jinja", "llama": "qwen2_5.jinja", "qwen3": "qwen3.jinja"}
ZEN_ID = "trl-internal-testing/zen"
# Short aphorisms written for these tests (same shape as zen: 17 train rows, 2 test rows, one prompt each).
ZEN_PROMPTS = [
    "Plain is better than clever.",
    "Short names for short lives.",
    "Tests first, then speed.",
    "A clear error beats a silent one.",
    "One helper for one job.",
    "Measure before you tune.",
    "Small steps are easy to undo.",
    "Names should say what they hold.",
    "Flat code reads faster.",
    "Comments explain why, not what.",
    "Every number needs its command.",
    "Keep the default path fast.",
    "Fail loudly at the boundary.",
    "Data outlives code.",
    "Read the parent before you override.",
    "A failing test is a gift.",
    "Ship the smallest thing that works.",
    "Review what the model saw.",
    "Logs are for humans.",
]
ZEN_SPLITS = {"train": ZEN_PROMPTS[:17], "test": ZEN_PROMPTS[17:]}


def qwen_char_tokenizer(template: str = "qwen2_5.jinja"):
    from importlib.resources import files

    from cipo.builtin_models import char_tokenizer

    tokenizer = char_tokenizer()
    special = ["<|im_start|>", "<|im_end|>"] + (["<think>", "</think>"] if template.startswith("qwen3") else [])
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    tokenizer.chat_template = files("trl").joinpath(f"chat_templates/{template}").read_text()
    return tokenizer


def save_qwen_char_model(folder: Path, architecture: str = "qwen2", head: str = "causal") -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from cipo.builtin_models import tiny_model_config

    tokenizer = qwen_char_tokenizer(CHAT_TEMPLATES[architecture])
    config = tiny_model_config(len(tokenizer), architecture, hidden_size=16, num_layers=2, num_heads=2)
    torch.manual_seed(0)
    if head == "classification":
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _hub_folder(hub_cache: Path, repo_id: str, kind: str) -> Path:
    return hub_cache / f"{kind}--{repo_id.replace('/', '--')}"


def build_model_cache(hub_cache: Path) -> None:
    """Write every stand-in model into ``hub_cache`` (skips those already there)."""
    for repo_id, (architecture, head) in STANDIN_MODELS.items():
        repo_folder = _hub_folder(hub_cache, repo_id, "models")
        snapshot = repo_folder / "snapshots" / STANDIN_REVISION
        if (snapshot / "config.json").exists():
            continue
        save_qwen_char_model(snapshot, architecture, head)
        (repo_folder / "refs").mkdir(parents=True, exist_ok=True)
        (repo_folder / "refs" / "main").write_text(STANDIN_REVISION)


def build_zen(dataset_root: Path) -> Path:
    """Parquet files ``<config>/<split>.parquet`` shaped like zen's ``standard``/``conversational_prompt_only``."""
    from datasets import Dataset

    folder = dataset_root / ZEN_ID.replace("/", "--")
    for split, prompts in ZEN_SPLITS.items():
        standard = folder / "standard_prompt_only" / f"{split}.parquet"
        conversational = folder / "conversational_prompt_only" / f"{split}.parquet"
        if standard.exists() and conversational.exists():
            continue
        standard.parent.mkdir(parents=True, exist_ok=True)
        conversational.parent.mkdir(parents=True, exist_ok=True)
        Dataset.from_dict({"prompt": prompts}).to_parquet(standard)
        chats = [[{"role": "user", "content": prompt}] for prompt in prompts]
        Dataset.from_dict({"prompt": chats}).to_parquet(conversational)
    return folder
