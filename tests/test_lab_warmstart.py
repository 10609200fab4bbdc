"""Where the lab's warm start comes from: the cache, the copy shipped with cipo, or training; and a pretrained
model in its place."""

from __future__ import annotations

import json

from transformers import AutoModelForCausalLM, AutoTokenizer

from cipo.lab import warmstart
from cipo.lab.config import quick, tiny
from cipo.lab.warmstart import SHIPPED_DIR, config_hash, load_or_train_warm_start


def test_the_quick_presets_warm_start_ships_with_cipo():
    config = quick()
    shipped = SHIPPED_DIR / f"warm-{config_hash(config.task, config.model, config.warm_start)}"
    record = json.loads((shipped / "warm_start.json").read_text())
    assert record["parameters"] > 500_000 and len(record["losses"]) == config.warm_start.steps
    model = AutoModelForCausalLM.from_pretrained(shipped)
    assert sum(p.numel() for p in model.parameters()) == record["parameters"]
    assert len(AutoTokenizer.from_pretrained(shipped)) == record["vocab_size"]


def test_a_shipped_warm_start_is_used_when_the_cache_has_none(tmp_path, monkeypatch):
    config = tiny()
    name = f"warm-{config_hash(config.task, config.model, config.warm_start)}"
    trained, record = load_or_train_warm_start(config.task, config.model, config.warm_start, tmp_path / "a", False)
    assert not record["cached"] and trained.name == name
    shipped_root = tmp_path / "shipped"
    shipped_root.mkdir()
    trained.rename(shipped_root / name)
    monkeypatch.setattr(warmstart, "SHIPPED_DIR", shipped_root)
    path, record = load_or_train_warm_start(config.task, config.model, config.warm_start, tmp_path / "b", False)
    assert path == shipped_root / name and record["cached"] and record["shipped"]
    assert not (tmp_path / "b").exists()  # nothing trained, nothing written
    config.warm_start.use_shipped = False  # train it here instead, with the same hash
    assert config_hash(config.task, config.model, config.warm_start) == name.removeprefix("warm-")
    path, record = load_or_train_warm_start(config.task, config.model, config.warm_start, tmp_path / "b", False)
    assert path == tmp_path / "b" / name and not record["cached"]


def test_builtin_lab_warm_start_is_the_shipped_one_on_an_empty_cache(tmp_path):
    from pathlib import Path

    from cipo.lab.builtins import warm_start_path

    path = Path(warm_start_path(cache_dir=tmp_path / "empty"))
    assert path.parent == SHIPPED_DIR and not (tmp_path / "empty").exists()  # found, not trained
