"""Sampling completions, with one seed per sample so that a sample does not depend on how requests were batched.

Two backends share one interface, :class:`Generator`: ``generate(requests) -> generations``.

* ``transformers``: batched ``model.generate`` with its KV cache, on CPU or GPU. Sampling itself is done by
  :class:`SeededSampler`, a logits processor that draws each row's token from that row's own random generator;
  ``generate`` then runs greedy on the result. Sample ``j`` of a problem thus gets the same random stream whatever
  batch it lands in, so a resumed run draws the same samples as an uninterrupted one (up to floating-point
  differences between batch shapes).
* ``vllm``: used when vLLM is installed and a GPU is present; one request per sample with its own
  ``SamplingParams(seed=...)``, which is how vLLM seeds individual requests.

Chat models get their chat template; a tokenizer without one gets a plain ``User:``/``Assistant:`` rendering.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from cipo.core.prompts import Prompt, is_conversational_prompt

BACKENDS = ("auto", "transformers", "vllm")


@dataclass
class SamplingConfig:
    """Sampling parameters, recorded with every result."""

    temperature: float = field(
        default=0.6, metadata={"help": "Sampling temperature; 0 means greedy decoding."}
    )
    top_p: float = field(
        default=0.95,
        metadata={
            "help": "Nucleus sampling: keep the smallest set of tokens with this "
            "total probability (1.0 keeps all)."
        },
    )
    max_new_tokens: int = field(default=1024, metadata={"help": "Most tokens generated per sample."})
    seed: int = field(
        default=0,
        metadata={
            "help": "Base seed; each sample's seed derives from it, the problem id, "
            "the turn and the sample index."
        },
    )

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: Prompt
    seed: int


@dataclass(frozen=True)
class Generation:
    text: str
    num_tokens: int
    finish_reason: Literal["stop", "length"]


class Generator(Protocol):
    """What the evaluation loop needs from a backend."""

    backend: str
    default_batch_size: int

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]: ...


def sample_seed(base_seed: int, problem_id: str, turn: int, sample_index: int) -> int:
    """A stable 63-bit seed for one sample (Python's ``hash`` changes between processes; sha256 does not)."""
    digest = hashlib.sha256(f"{base_seed}\x00{problem_id}\x00{turn}\x00{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """Prompt text for the model: the chat template for message lists when the tokenizer has one."""
    if not is_conversational_prompt(prompt):
        return str(prompt)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    turns = [f"{message['role'].capitalize()}: {message['content']}" for message in prompt]
    return "\n\n".join([*turns, "Assistant:"])


def select_backend(
    requested: str = "auto",
    *,
    device: str = "auto",
    vllm_installed: bool | None = None,
    gpu_available: bool | None = None,
) -> str:
    """The backend to use: ``auto`` picks vLLM when it is installed and a GPU is usable, else transformers."""
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; choose one of {BACKENDS}")
    if vllm_installed is None:
        vllm_installed = importlib.util.find_spec("vllm") is not None
    if gpu_available is None:
        gpu_available = _cuda_available()
    gpu_usable = gpu_available and device != "cpu"
    if requested == "vllm":
        if not vllm_installed:
            raise RuntimeError("backend 'vllm' requested but vLLM is not installed: pip install 'cipo[vllm]'")
        if not gpu_usable:
            raise RuntimeError("backend 'vllm' needs a GPU; use --backend transformers on CPU")
        return "vllm"
    if requested == "transformers":
        return "transformers"
    return "vllm" if vllm_installed and gpu_usable else "transformers"


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def load_generator(
    model: str,
    sampling: SamplingConfig,
    *,
    backend: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
) -> Generator:
    """Load ``model`` (a local path, a hub id, or ``builtin:tiny-llama``) behind the chosen backend."""
    from cipo.builtin_models import resolve_model

    model = resolve_model(model)
    chosen = select_backend(backend, device=device)
    if chosen == "vllm":
        return VLLMGenerator(model, sampling, dtype=dtype)
    return TransformersGenerator(model, sampling, device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------------
# transformers backend


class SeededSampler:
    """A logits processor that samples each row from its own seeded generator and returns one-hot logits.

    Temperature and top-p are applied here; ``generate`` runs greedy and so picks exactly the sampled token.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float) -> None:
        self.seeds = list(seeds)
        self.temperature = temperature
        self.top_p = top_p
        self._generators: list[Any] | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self._generators is None:
            self._generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            logits = _top_p_filter(logits, self.top_p)
        # Gumbel-max: argmax(logits + Gumbel noise) is an exact draw from softmax(logits).
        uniform = torch.stack(
            [torch.rand(logits.shape[-1], generator=g, device=logits.device) for g in self._generators]
        )
        exponential = -torch.log(uniform.clamp_min(1e-20))
        gumbel = -torch.log(exponential.clamp_min(1e-20))
        chosen = torch.argmax(logits + gumbel, dim=-1, keepdim=True)
        one_hot = torch.full_like(scores, float("-inf"))
        return one_hot.scatter_(-1, chosen, 0.0)


# Nucleus candidates looked at first; a full sort runs only for rows whose nucleus is wider (a flat distribution).
TOP_P_CANDIDATES = 256


def _top_p_filter(logits: Any, top_p: float) -> Any:
    """Mask the tokens outside each row's nucleus. Exact; a full-vocabulary sort per step cost about as much as a
    decode step of a 135M model on CPU, so the nucleus is first looked for among the top candidates."""
    import torch

    candidates = min(TOP_P_CANDIDATES, logits.shape[-1])
    top_logits, top_index = torch.topk(logits, candidates, dim=-1)
    top_probs = torch.exp(top_logits - torch.logsumexp(logits, dim=-1, keepdim=True))
    # Drop a token when the tokens ranked above it already reach top_p; the top token always stays.
    drop_top = (torch.cumsum(top_probs, dim=-1) - top_probs) >= top_p
    filtered = torch.full_like(logits, float("-inf")).scatter(-1, top_index, top_logits.masked_fill(drop_top, float("-inf")))
    wide = top_probs.sum(dim=-1) < top_p
    if wide.any():
        filtered[wide] = _top_p_filter_sorted(logits[wide], top_p)
    return filtered


def _top_p_filter_sorted(logits: Any, top_p: float) -> Any:
    import torch

    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probs = torch.softmax(sorted_logits, dim=-1)
    drop_sorted = (torch.cumsum(probs, dim=-1) - probs) >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


class TransformersGenerator:
    """Batched sampling with ``AutoModelForCausalLM.generate`` (KV cache on), one seed per sample."""

    backend = "transformers"
    default_batch_size = 16

    def __init__(
        self, model: str, sampling: SamplingConfig, *, device: str = "auto", dtype: str = "auto"
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.sampling = sampling
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        torch_dtype = _torch_dtype(dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
        self.eos_token_ids = _eos_token_ids(self.model, self.tokenizer)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.convert_ids_to_tokens(self.eos_token_ids[0])
        # A neutral config: the model's own generation defaults (repetition penalty, top_k...) would change the
        # distribution behind the recorded sampling parameters.
        self.model.generation_config = GenerationConfig(
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=self.tokenizer.bos_token_id,
        )
        self.uses_chat_template = bool(getattr(self.tokenizer, "chat_template", None))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        if not requests:
            return []
        texts = [render_prompt(self.tokenizer, r.prompt) for r in requests]
        # A chat template already holds the special tokens (BOS...); adding them again would double them.
        batch = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not self.uses_chat_template
        ).to(self.device)
        processors = LogitsProcessorList()
        if self.sampling.temperature > 0:
            processors.append(
                SeededSampler([r.seed for r in requests], self.sampling.temperature, self.sampling.top_p)
            )
        config = GenerationConfig(
            max_new_tokens=self.sampling.max_new_tokens,
            do_sample=False,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        with torch.inference_mode():
            output = self.model.generate(**batch, generation_config=config, logits_processor=processors)
        new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()
        return [self._finish(ids) for ids in new_tokens]

    def _finish(self, ids: list[int]) -> Generation:
        stop = next((i for i, token in enumerate(ids) if token in self.eos_token_ids), None)
        kept = ids if stop is None else ids[:stop]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        if stop is not None:
            return Generation(text, stop + 1, "stop")
        return Generation(text, len(ids), "length")


def _torch_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto, float32, bfloat16 or float16") from None


def _eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        for token in value if isinstance(value, list) else [value]:
            if token is not None and token not in ids:
                ids.append(int(token))
    if not ids:
        raise ValueError(
            "the model and its tokenizer define no end-of-sequence token: cannot tell where answers end"
        )
    return ids


# ---------------------------------------------------------------------------------------------------------------
# vLLM backend


class VLLMGenerator:
    """vLLM's offline ``LLM.generate``; imported lazily since vLLM is optional and GPU-only here."""

    backend = "vllm"
    default_batch_size = 1024

    def __init__(
        self, model: str, sampling: SamplingConfig, *, dtype: str = "auto", **llm_kwargs: Any
    ) -> None:
        from vllm import LLM, SamplingParams

        self.sampling = sampling
        self._sampling_params = SamplingParams
        self._llm = LLM(model=model, dtype=dtype, seed=sampling.seed, **llm_kwargs)
        self.tokenizer = self._llm.get_tokenizer()
        self.uses_chat_template = bool(getattr(self.tokenizer, "chat_template", None))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        if not requests:
            return []
        prompts = [{"prompt_token_ids": self._encode(r.prompt)} for r in requests]
        params = [
            self._sampling_params(
                n=1,
                temperature=self.sampling.temperature,
                top_p=self.sampling.top_p,
                max_tokens=self.sampling.max_new_tokens,
                seed=r.seed,
            )
            for r in requests
        ]
        outputs = self._llm.generate(prompts, params, use_tqdm=False)
        return [self._to_generation(output.outputs[0]) for output in outputs]

    def _encode(self, prompt: Prompt) -> list[int]:
        text = render_prompt(self.tokenizer, prompt)
        return self.tokenizer.encode(text, add_special_tokens=not self.uses_chat_template)

    @staticmethod
    def _to_generation(completion: Any) -> Generation:
        reason = "length" if completion.finish_reason == "length" else "stop"
        return Generation(completion.text, len(completion.token_ids), reason)
