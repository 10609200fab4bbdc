"""Helpers for the evaluation tests: a tiny local chat model and simple reward functions."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from cipo.core.prompts import attempt_text
from cipo.rewards.math import extract_answer

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<unk>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]


def build_tiny_chat_model(directory: Path, seed: int = 0) -> Path:
    """Save a 2-layer Llama with a character-level tokenizer and a chat template to ``directory``."""
    import torch
    from tokenizers import Tokenizer, decoders, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    characters = sorted(set(string.printable))
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + characters)}
    # BPE without merges splits text into characters; Fuse joins them back without spaces.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="<|end|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[3:]})
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def exact_match_reward(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
    """1.0 when the extracted final answer of a completion (or its stripped text) equals the gold answer."""
    rewards = []
    for completion, gold in zip(completions, answer, strict=True):
        text = attempt_text(completion)
        guess = extract_answer(text) or text.strip()
        rewards.append(1.0 if guess == str(gold).strip() else 0.0)
    return rewards


def parity_reward(completions: list[Any], **_: Any) -> list[float]:
    """Deterministic but mixed outcomes from a random model: correct when the completion has even length."""
    return [1.0 if len(attempt_text(c)) % 2 == 0 else 0.0 for c in completions]
