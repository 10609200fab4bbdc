"""A tiny Llama (or Qwen2) and a small local BPE tokenizer with a chat template, saved and loaded like any Hub model.

Digits are always single tokens (arithmetic is learned digit by digit); words merge into BPE tokens, so the review
instruction costs a few dozen tokens, not a hundred and fifty characters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from cipo.core.prompts import DEFAULT_INSTRUCTION

PAD, BOS, EOS, UNK = "<|pad|>", "<|bos|>", "<|end|>", "<|unk|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, *ROLE_TOKENS]

# Each turn is <|role|>content<|end|>; the assistant's <|end|> is its EOS, so a completion stops where a turn ends.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)

# Always in the tokenizer's training text, so every character a lab prompt uses is in the vocabulary.
BASE_TEXT = "0123456789 +-*/=().,:;!?\n\\boxed{} Compute " + DEFAULT_INSTRUCTION


@dataclass
class TinyModelConfig:
    hidden_size: int = field(default=128, metadata={"help": "Width of the residual stream."})
    num_layers: int = field(default=4, metadata={"help": "Number of decoder layers."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads (no grouped-query attention)."})
    intermediate_size: int = field(default=384, metadata={"help": "Width of the SwiGLU MLP."})
    max_positions: int = field(default=384, metadata={"help": "Longest sequence (prompt + completion) in tokens."})
    vocab_size: int = field(default=512, metadata={"help": "Upper bound of the BPE vocabulary (bytes + merges)."})
    architecture: str = field(default="llama", metadata={"help": "Transformers architecture: 'llama', 'qwen2' or 'gpt2'."})


def train_tokenizer(texts: Iterable[str], vocab_size: int = 384) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the lab's own text, digits split one per token, with a chat template."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([BASE_TEXT, *texts], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=4096,
    )


ARCHITECTURES = {"llama": LlamaConfig, "qwen2": Qwen2Config, "gpt2": GPT2Config}


def _architecture_config(config: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    special = dict(
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    if config.architecture == "gpt2":  # learned absolute positions: the left padding shifts them
        return GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=config.hidden_size,
            n_inner=config.intermediate_size,
            n_layer=config.num_layers,
            n_head=config.num_heads,
            n_positions=config.max_positions,
            resid_pdrop=0.0,  # no dropout, as the Llama and Qwen2 builds: forwards are deterministic
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            tie_word_embeddings=True,
            **special,
        )
    return ARCHITECTURES[config.architecture](
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        **special,
    )


def build_model(config: TinyModelConfig, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> PreTrainedModel:
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {config.architecture!r}")
    torch.manual_seed(seed)
    model_config = _architecture_config(config, tokenizer)
    model = AutoModelForCausalLM.from_config(model_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_top_layers(model: torch.nn.Module, count: int) -> torch.nn.Module:
    """Freeze all but the top ``count`` decoder layers and the final norm (``count`` = 0: train everything). On a
    CPU this is the big saving for a real model: the backward pass stops below the top layers."""
    if count <= 0:
        return model
    total = model.config.num_hidden_layers
    if count > total:
        raise ValueError(f"rl.trainable_layers={count}, but the model has {total} decoder layers")
    trained = tuple(f"model.layers.{index}." for index in range(total - count, total)) + ("model.norm.",)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(trained)
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise ValueError(f"no parameter named like {trained[0]!r}: train_top_layers expects a Llama-style model")
    return model
