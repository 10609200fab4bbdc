"""The lab's tokenizer and tiny model: round trips, chat template, save_pretrained / from_pretrained."""

from __future__ import annotations

import random

import pytest
import torch
from tiny_models import save_tiny_model, tiny_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from cipo.core.prompts import build_correction_prompt
from cipo.lab.config import quick
from cipo.lab.model import (
    EOS,
    TinyModelConfig,
    build_model,
    count_parameters,
    train_tokenizer,
    train_top_layers,
)
from cipo.lab.tasks import TaskConfig, format_solution, make_test_split, solve


@pytest.fixture(scope="module")
def tokenizer():
    rng = random.Random(0)
    problems = make_test_split(TaskConfig(test_size=30))
    texts = [t for p in problems for t in (p.text, format_solution(solve(p, rng, 0.3)))]
    return train_tokenizer(texts)


def test_tokenizer_round_trips_and_splits_digits(tokenizer):
    rng = random.Random(1)
    for problem in make_test_split(TaskConfig(levels=(1, 5), test_size=10)):
        for text in (problem.text, format_solution(solve(problem, rng, 0.5)), "odd text: ünïcödé ✓ 12345"):
            ids = tokenizer.encode(text, add_special_tokens=False)
            assert tokenizer.decode(ids) == text
    pieces = tokenizer.convert_ids_to_tokens(tokenizer.encode("1234+56=1290", add_special_tokens=False))
    assert [p for p in pieces if p.isdigit()] == list("123456") + list("1290")


def test_chat_template_matches_training_time_prompts(tokenizer):
    problem = make_test_split(TaskConfig(test_size=1))[0]
    prompt = build_correction_prompt(problem.messages(), "1+2=3\n\\boxed{3}")
    text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    assert text == (
        f"<|user|>{problem.text}<|end|><|assistant|>1+2=3\n\\boxed{{3}}<|end|><|user|>{prompt[2]['content']}"
        "<|end|><|assistant|>"
    )
    assert tokenizer.eos_token == EOS
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert tokenizer.decode(ids["input_ids"]) == text


def test_model_saves_and_loads(tmp_path, tokenizer):
    model = build_model(TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tokenizer)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    ids = torch.tensor([loaded_tokenizer.encode("Compute 1+2.", add_special_tokens=False)])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits)
    assert loaded_tokenizer.chat_template == tokenizer.chat_template
    assert loaded.generation_config.eos_token_id == tokenizer.eos_token_id


def test_quick_preset_model_size():
    config = quick().model
    tokenizer = train_tokenizer([], vocab_size=config.vocab_size)
    parameters = count_parameters(build_model(config, tokenizer))
    assert 0.8e6 < parameters < 10e6


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_shared_tiny_model_helper(tmp_path, architecture):
    path = save_tiny_model(tmp_path / architecture, architecture=architecture)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == architecture
    messages = [{"role": "user", "content": "What is 6*7?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] <= ids["input_ids"].shape[1] + 3
    assert tiny_tokenizer().decode(tiny_tokenizer().encode("def f(x): return x\n")) == "def f(x): return x\n"


def test_train_top_layers_freezes_everything_below_them(tokenizer):
    model = build_model(TinyModelConfig(hidden_size=32, num_layers=4, num_heads=2, intermediate_size=64), tokenizer)
    train_top_layers(model, 2)
    trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trained and all(name.startswith(("model.layers.2.", "model.layers.3.", "model.norm.")) for name in trained)
    assert any(name.startswith("model.layers.2.") for name in trained) and "model.norm.weight" in trained
    assert not any(name.startswith(("model.layers.1.", "model.embed_tokens.")) for name in trained)
    loss = model(input_ids=torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss
    loss.backward()
    assert all(parameter.grad is None for name, parameter in model.named_parameters() if name not in trained)
    assert train_top_layers(model, 0) is model  # 0: leave the model as it is
    with pytest.raises(ValueError, match="trainable_layers=5.*4 decoder layers"):
        train_top_layers(model, 5)
