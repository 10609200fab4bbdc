"""Tiny local models for tests: a small BPE tokenizer with a chat template and a tiny Llama or Qwen2, written
with ``save_pretrained`` so that tests load them through ``from_pretrained``, exactly like a user's model.

The tokenizer and model builders are the lab's (``cipo.lab.model``): digits are single tokens, the chat template
renders ``<|role|>content<|end|>`` turns, and ``<|end|>`` is the EOS token.

    from tiny_models import save_tiny_model
    path = save_tiny_model(tmp_path / "model", architecture="qwen2")
    trainer = CIPOTrainer(model=str(path), ...)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cipo.lab.model import TinyModelConfig, build_model, train_tokenizer

# Enough text for the tokenizer to know every character a test prompt is likely to use.
DEFAULT_TEXTS = (
    "Compute 12+7-3. What is 6*7? Answer: \\boxed{42}",
    "def add(a, b):\n    return a + b\n",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!",
    "#### 18 [...] <>|_~`'\"@$%^&",
)


def tiny_tokenizer(texts: Iterable[str] = DEFAULT_TEXTS, vocab_size: int = 320):
    """A byte-level BPE tokenizer (any text round-trips) with pad/bos/eos/unk tokens and a chat template."""
    return train_tokenizer(texts, vocab_size=vocab_size)


def tiny_model(tokenizer, architecture: str = "llama", hidden_size: int = 32, num_layers: int = 2, seed: int = 0):
    """A randomly initialized Llama or Qwen2 of a few tens of thousands of parameters."""
    config = TinyModelConfig(
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=2,
        intermediate_size=2 * hidden_size,
        max_positions=1024,
        architecture=architecture,
    )
    return build_model(config, tokenizer, seed=seed)


def save_tiny_model(output_dir: str | Path, architecture: str = "llama", seed: int = 0, **model_kwargs) -> Path:
    """Write a tiny model and its tokenizer to ``output_dir`` with ``save_pretrained``; returns the folder."""
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer, architecture=architecture, seed=seed, **model_kwargs)
    output = Path(output_dir)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return output
