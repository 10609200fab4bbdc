"""Correction prompts: the original problem plus the model's own attempt, and a request to review and fix it.

Two prompt shapes are supported, as in TRL datasets:

* conversational (a list of ``{"role", "content"}`` messages), in one of two layouts:

  - ``"conversation"``: the conversation continues with the attempt as the assistant's turn(s) (tool calls and
    tool results kept as they were) and the review instruction as a new user turn;
  - ``"user_turn"``: the attempt is quoted inside the last user message, after the problem, followed by the
    instruction. Chat templates of thinking models (Qwen3, DeepSeek-R1) drop ``<think>...</think>`` from earlier
    assistant turns, so the continued conversation would hide the reasoning the model is asked to review; this
    layout shows the whole attempt whatever the template does. ``template_keeps_reasoning`` detects such a
    template by rendering it.

* plain text: a template with ``{prompt}`` and ``{attempt}`` slots (and optionally ``{instruction}``).

The default instruction never says whether the attempt was right: the model must judge that itself, otherwise a
correction of a correct anchor would be trivial and retention would measure nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Message = dict[str, Any]
Prompt = str | list[Message]

DEFAULT_INSTRUCTION = (
    "Review your previous attempt carefully, step by step. If you find a mistake, correct it. "
    "Then write the complete final solution, in the same format as asked."
)

DEFAULT_TEXT_TEMPLATE = "{prompt}{attempt}\n\n{instruction}\n"

TRUNCATION_MARKER = "[...] "

LAYOUTS = ("auto", "conversation", "user_turn")
ATTEMPT_HEADER = "Your previous attempt:"
_REASONING_PROBE = "cipo-reasoning-probe-7f3a"

# Columns that describe the original rollout rather than the problem: never copied onto correction rows.
_ROLLOUT_COLUMNS = frozenset({"prompt", "completion", "completion_ids"})


class TokenizerLike(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


class ChatTokenizerLike(TokenizerLike, Protocol):
    def apply_chat_template(self, conversation: list[Message], **kwargs: Any) -> Any: ...


def is_conversational_prompt(prompt: Any) -> bool:
    return isinstance(prompt, list) and all(isinstance(m, Mapping) and "role" in m for m in prompt)


def has_tool_turns(completion: Any) -> bool:
    """True for a tool-calling rollout: an assistant message with ``tool_calls`` or a ``tool`` message."""
    return isinstance(completion, list) and any(
        isinstance(m, Mapping) and (m.get("tool_calls") or m.get("role") == "tool") for m in completion
    )


def attempt_text(completion: Any) -> str:
    """The text of a single-turn completion, whether TRL gave it as a string or as a list of assistant messages.

    Tool-calling rollouts have no faithful single text (calls and results would merge into one turn): they raise,
    and are kept as messages by the ``"conversation"`` layout instead.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        if has_tool_turns(completion):
            raise ValueError(
                "a tool-calling attempt (assistant tool_calls / tool messages) cannot be flattened into one text; "
                "use CIPOConfig.correction_layout='conversation' (or 'auto'), which keeps its turns"
            )
        parts = [m.get("content", "") for m in completion if isinstance(m, Mapping)]
        return "".join(p if isinstance(p, str) else _content_to_text(p) for p in parts)
    raise TypeError(f"completion must be a string or a list of messages, got {type(completion).__name__}")


def template_keeps_reasoning(tokenizer: ChatTokenizerLike) -> bool:
    """Whether the chat template shows ``<think>`` reasoning of an earlier assistant turn (rendered, not guessed)."""
    conversation = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": f"<think>{_REASONING_PROBE}</think>a"},
        {"role": "user", "content": "i"},
    ]
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    return _REASONING_PROBE in rendered


def resolve_layout(layout: str, tokenizer: ChatTokenizerLike | None) -> str:
    """``"auto"``: ``"conversation"`` when the template keeps earlier reasoning (or cannot be rendered), else
    ``"user_turn"``. Tool-calling attempts always use ``"conversation"`` (see ``build_correction_prompt``)."""
    if layout not in LAYOUTS:
        raise ValueError(f"correction_layout must be one of {LAYOUTS}, got {layout!r}")
    if layout != "auto":
        return layout
    if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
        return "conversation"
    return "conversation" if template_keeps_reasoning(tokenizer) else "user_turn"


def _content_to_text(content: Any) -> str:
    if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}, ...]
        return "".join(block.get("text", "") for block in content if isinstance(block, Mapping))
    return str(content)


def truncate_attempt(attempt: str, tokenizer: TokenizerLike | None, max_tokens: int | None) -> str:
    """Keep the last ``max_tokens`` tokens of an attempt (its end holds the final answer)."""
    if tokenizer is None or max_tokens is None or max_tokens <= 0:
        return attempt
    ids = tokenizer.encode(attempt, add_special_tokens=False)
    if len(ids) <= max_tokens:
        return attempt
    return TRUNCATION_MARKER + tokenizer.decode(ids[-max_tokens:], skip_special_tokens=True)


def validate_text_template(template: str) -> None:
    """Raise ValueError unless the template has both ``{prompt}`` and ``{attempt}`` slots and formats cleanly."""
    for slot in ("{prompt}", "{attempt}"):
        if slot not in template:
            raise ValueError(f"correction_template must contain the slot {slot}; got {template!r}")
    try:
        template.format(prompt="", attempt="", instruction="")
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"correction_template {template!r} does not format with the slots prompt, attempt, instruction: {error!r}"
        ) from error


FEEDBACK_INTRO = "Your previous attempt was checked."


def with_feedback(feedback: str | None, instruction: str = DEFAULT_INSTRUCTION) -> str:
    """The instruction preceded by external feedback (opt-in; the paper's method uses none)."""
    if not feedback:
        return instruction
    return f"{FEEDBACK_INTRO}\n{feedback}\n\n{instruction}"


def build_correction_prompt(
    prompt: Prompt,
    attempt: str | list[Message],
    template: str | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
    layout: str = "conversation",
) -> Prompt:
    """The prompt that asks the policy to review and fix ``attempt``, in the same shape as ``prompt``.

    ``attempt`` is a text, or (tool-calling rollouts, conversational prompts only) the rollout's messages, which
    always continue the conversation turn by turn.
    """
    if is_conversational_prompt(prompt):
        messages = [dict(m) for m in prompt]
        if isinstance(attempt, list):
            return [*messages, *[dict(m) for m in attempt], {"role": "user", "content": instruction}]
        if layout == "user_turn":
            return _quote_in_last_user_turn(messages, attempt, instruction)
        if layout != "conversation":
            raise ValueError(f"layout must be 'conversation' or 'user_turn' here, got {layout!r}")
        return [*messages, {"role": "assistant", "content": attempt}, {"role": "user", "content": instruction}]
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string or a list of messages, got {type(prompt).__name__}")
    if not isinstance(attempt, str):
        raise ValueError("a tool-calling attempt needs a conversational prompt (a list of messages)")
    return (template or DEFAULT_TEXT_TEMPLATE).format(prompt=prompt, attempt=attempt, instruction=instruction)


def _quote_in_last_user_turn(messages: list[Message], attempt: str, instruction: str) -> list[Message]:
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None or not isinstance(messages[last_user].get("content"), str):
        raise ValueError("correction_layout='user_turn' needs a prompt whose last user message has text content")
    problem = messages[last_user]["content"]
    quoted = {**messages[last_user], "content": f"{problem}\n\n{ATTEMPT_HEADER}\n{attempt}\n\n{instruction}"}
    return [*messages[:last_user], quoted, *messages[last_user + 1 :]]


def _truncated_attempt(
    completion: Any, tokenizer: TokenizerLike | None, max_tokens: int | None
) -> str | list[Message]:
    """A text attempt truncated from the start; a tool-calling rollout as messages, its last turn truncated."""
    if not has_tool_turns(completion):
        return truncate_attempt(attempt_text(completion), tokenizer, max_tokens)
    messages = [dict(m) for m in completion]
    last = messages[-1]
    if isinstance(last.get("content"), str):
        last["content"] = truncate_attempt(last["content"], tokenizer, max_tokens)
    return messages


def build_correction_row(
    source_row: Mapping[str, Any],
    completion: Any,
    *,
    tokenizer: TokenizerLike | None = None,
    max_attempt_tokens: int | None = None,
    template: str | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
    layout: str = "conversation",
    sent_prompt: Prompt | None = None,
) -> dict[str, Any]:
    """A dataset row for a correction: the source row's columns (``answer``, ``tests``...) with a new prompt.

    Reward functions receive the same columns as for the original rollout, so they score corrections unchanged.
    ``sent_prompt`` is the prompt the model actually saw (an environment's ``reset()`` may have built or extended
    it); without it the row's own ``prompt`` is used.
    """
    prompt = sent_prompt if sent_prompt is not None else source_row.get("prompt")
    if prompt is None:
        raise ValueError(f"cannot build a correction: the row has no 'prompt' (columns: {sorted(source_row)})")
    attempt = _truncated_attempt(completion, tokenizer, max_attempt_tokens)
    row = {key: value for key, value in source_row.items() if key not in _ROLLOUT_COLUMNS}
    row["prompt"] = build_correction_prompt(prompt, attempt, template, instruction, layout)
    return row
