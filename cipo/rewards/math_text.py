"""Text-side helpers of the math verifier: completion text, thinking blocks, boxes, golds, hedging, fast path.

Nothing here imports sympy or math-verify: these run in the trainer's process, on every completion, and must be
cheap and linear in the text length. The answer itself is extracted by math-verify's ``parse`` in the workers
(:mod:`cipo.rewards.math`); the fast path below only settles cases where that parse is known in advance.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Sequence
from fractions import Fraction

# Longer "answers" are almost always runaway generations; sympy on them is slow and never right.
MAX_ANSWER_CHARS = 1000
# Only the tail of a longer graded text is parsed: the answer sits at the end, and math-verify's regexes and
# normalization grow with the text.
MAX_GRADED_CHARS = 20_000

THINK_MODES = ("after", "whole")
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"

Golds = tuple[str, ...]


# ---------------------------------------------------------------------------------------------------------------
# Completion text and thinking blocks
# ---------------------------------------------------------------------------------------------------------------


def completion_text(completion: object) -> str:
    """The text of a completion: a string, or the content of the last message of a conversational one."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _message_content_text(completion.get("content"))
    if isinstance(completion, list | tuple) and completion:
        assistant = [m for m in completion if isinstance(m, dict) and m.get("role") == "assistant"]
        return completion_text(assistant[-1] if assistant else completion[-1])
    return ""


def _message_content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal content: [{"type": "text", "text": "..."}, ...]
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return ""


def graded_text(text: str, think: str = "after") -> str:
    """The part of a completion that is graded.

    ``think="after"``: only what follows the last ``</think>``; a completion that opens ``<think>`` and never
    closes it (truncated mid-reasoning) has no answer. ``think="whole"``: the whole text. Either way only the last
    :data:`MAX_GRADED_CHARS` characters are kept, and a text whose last line is GSM8K's ``#### <answer>`` is
    graded on that answer alone (as ``\\boxed{<answer>}``).
    """
    if think not in THINK_MODES:
        raise ValueError(f"think must be one of {THINK_MODES}, got {think!r}")
    if think == "after":
        close = text.rfind(_THINK_CLOSE)
        if close >= 0:
            text = text[close + len(_THINK_CLOSE) :]
        elif _THINK_OPEN in text:
            return ""
    text = text[-MAX_GRADED_CHARS:]
    gsm8k_final = _GSM8K_FINAL_LINE.search(text)
    if gsm8k_final:
        return "\\boxed{" + _without_thousands_commas(gsm8k_final.group("answer")) + "}"
    return text


# GSM8K's answer format, which math-verify does not know: on GSM8K's own test solutions its parse picks another
# number in 4 of 1319 (an earlier "answer ... 33.333%" outranks a plain "#### 33").
_GSM8K_FINAL_LINE = re.compile(r"^####[ \t]*(?P<answer>[^\n]*?\S)[ \t]*\s*\Z", re.MULTILINE)


def _without_thousands_commas(number: str) -> str:
    return number.replace(",", "") if _THOUSANDS_NUMBER.fullmatch(number) else number


# ---------------------------------------------------------------------------------------------------------------
# Boxes
# ---------------------------------------------------------------------------------------------------------------

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*")
_BOX_TOKEN = re.compile(r"[^\s$]+")
_UNESCAPED_BRACE = re.compile(r"(?<!\\)[{}]")


def last_boxed_content(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``) in ``text``."""
    starts = [match.end() for match in _BOX_COMMAND.finditer(text)]
    # Scan boxes from the last one. If box k never closes, no earlier box that contains it can close either,
    # so an earlier box's scan may stop where box k starts: the whole search stays linear in len(text).
    scan_limit = len(text)
    for content_start in reversed(starts):
        if content_start < len(text) and text[content_start] == "{":
            content_end = _matching_brace(text, content_start, scan_limit)
            if content_end is not None:
                return text[content_start + 1 : content_end]
            scan_limit = content_start
        elif text[content_start - 1].isspace():  # "\boxed 5": the answer is one token
            token = _BOX_TOKEN.match(text, content_start)
            if token:
                return token.group()
    return None


def _matching_brace(text: str, open_index: int, scan_limit: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_index``, ignoring escaped ``\\{`` and ``\\}``."""
    depth = 0
    for brace in _UNESCAPED_BRACE.finditer(text, open_index, scan_limit):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return brace.start()
    return None


def outer_boxed_contents(text: str) -> list[str]:
    """Contents of every complete ``\\boxed{...}`` / ``\\fbox{...}`` not inside another box, in order (one pass)."""
    box_opens = {match.end() for match in _BOX_COMMAND.finditer(text) if text.startswith("{", match.end())}
    contents: list[str] = []
    open_braces: list[int] = []
    open_boxes = 0  # boxes currently open: a box closing while another is open is nested
    for brace in _UNESCAPED_BRACE.finditer(text):
        if brace.group() == "{":
            open_braces.append(brace.start())
            open_boxes += brace.start() in box_opens
        elif open_braces:
            start = open_braces.pop()
            if start in box_opens:
                open_boxes -= 1
                if open_boxes == 0:
                    contents.append(text[start + 1 : brace.start()])
    return contents


# ---------------------------------------------------------------------------------------------------------------
# Legacy answer extraction (the eval runner's displays; the reward uses math-verify's parse instead)
# ---------------------------------------------------------------------------------------------------------------

# Only the phrase itself: the answer is the rest of its line. (Matching the rest of the line in the pattern would
# hide later phrases on the same line, as in "Final Answer: The final answer is 10.")
_ANSWER_PHRASE = re.compile(
    r"(?:final\s+answer(?:\s+is)?|the\s+answer\s+is|answer\s*:|####)[\s:*]*", re.IGNORECASE
)
_INLINE_MATH = re.compile(r"(?<!\\)\$+(?P<math>[^$]+?)(?<!\\)\$")
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
_LEADING_NUMBER_THEN_WORDS = re.compile(
    r"(?P<number>[-+]?\d[\d,]*(?:\.\d+)?)(?:\s+[A-Za-z].*|,\s.*)?", re.DOTALL
)


def extract_answer(text: str) -> str | None:
    """A short final-answer string for displays: the last complete box, else the last answer phrase."""
    boxed = last_boxed_content(text)
    if boxed is not None:
        return boxed
    return _last_answer_phrase(text)


def _last_answer_phrase(text: str) -> str | None:
    phrase = None
    for phrase in _ANSWER_PHRASE.finditer(text):  # noqa: B007 - only the last phrase matters
        pass
    if phrase is None:
        return None
    line_end = text.find("\n", phrase.end())
    line_end = len(text) if line_end == -1 else line_end
    answer = text[phrase.end() : min(line_end, phrase.end() + MAX_ANSWER_CHARS + 1)].strip()
    math_span = _INLINE_MATH.search(answer)
    if math_span:
        return math_span.group("math").strip()
    answer = _SENTENCE_END.split(answer, maxsplit=1)[0].strip(" *")
    number_then_words = _LEADING_NUMBER_THEN_WORDS.fullmatch(answer)
    return number_then_words.group("number") if number_then_words else answer


_LATEX_NOISE = re.compile(r"\\left(?![A-Za-z])|\\right(?![A-Za-z])|\\[!,;:]|\\\$|\$|\s+")
_FRACTION_VARIANTS = re.compile(r"\\[dt]frac(?![A-Za-z])")
_THOUSANDS_NUMBER = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def normalize_answer(text: str) -> str:
    """Light, meaning-preserving normalization for comparing answer strings (spaces, ``\\left``, ``\\dfrac``)."""
    text = _LATEX_NOISE.sub("", text.replace("{,}", ","))
    text = _FRACTION_VARIANTS.sub(r"\\frac", text).rstrip(".")
    if _THOUSANDS_NUMBER.fullmatch(text):
        text = text.replace(",", "")
    return text


# ---------------------------------------------------------------------------------------------------------------
# Golds
# ---------------------------------------------------------------------------------------------------------------

_GSM8K_FINAL = re.compile(r"####\s*(?P<answer>[^\n]*?)\s*$")
_BOX_COMMANDS = re.compile(r"\\boxed|\\fbox")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


def gold_candidates(gold: object) -> Golds:
    """The accepted forms of a gold answer; a prediction is correct when it matches any of them.

    - a string is one answer. A whole GSM8K solution (``"... #### 18"``) is reduced to its final answer, a text
      with a single box (``"so $x=\\boxed{5}$"``) to the box's content; a text with several boxes is kept whole
      (math-verify reads ``\\boxed{1}, \\boxed{2}`` as the set ``{1, 2}``);
    - an int or float is written plainly (``27.0`` -> ``"27"``);
    - a list (OlympiadBench ``final_answer``) accepts its first element, or all elements joined by ", ".
    """
    if isinstance(gold, list | tuple):
        elements = [_gold_text(element) for element in gold]
        elements = [element for element in elements if element]
        if len(elements) > 1:
            return (elements[0], ", ".join(elements))
        return tuple(elements)
    text = _gold_text(gold)
    return (text,) if text else ()


def _gold_text(gold: object) -> str:
    if isinstance(gold, bool) or gold is None:
        return ""
    if isinstance(gold, numbers.Integral):
        return str(int(gold))
    if isinstance(gold, numbers.Real):
        value = float(gold)
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    if not isinstance(gold, str):
        return ""
    gsm8k_final = _GSM8K_FINAL.search(gold)
    if gsm8k_final:
        return gsm8k_final.group("answer").replace(",", "")
    boxes = outer_boxed_contents(gold)
    if len(boxes) == 1:
        return boxes[0].strip()
    return gold.strip()


def gold_as_latex(gold: str) -> str:
    """What math-verify parses for a gold: a text with boxes as it is, anything else inside one box.

    The box tells math-verify "this whole string is the answer": plain golds such as ``-2,1``, ``6+9i`` or
    ``(2,12) \\cup (12,102)`` parse as a set, a complex number, a union; bare, only a number would be found.
    Dollar signs go first (``$69$,$84$`` is the list ``69,84``; datasets also hold unbalanced ones).
    """
    if _BOX_COMMANDS.search(gold):
        return gold
    return "\\boxed{" + _UNESCAPED_DOLLAR.sub("", gold) + "}"


# ---------------------------------------------------------------------------------------------------------------
# Hedging: several candidate answers against a gold that has fewer
# ---------------------------------------------------------------------------------------------------------------

# A number, possibly "x = ", inside "$...$" or a box: the answers a hedge lists (3 or 4 or 5).
_NUMBER_TOKEN = r"(?:\$\s*)?(?:\\boxed\{\s*)?(?:[A-Za-z]\s*=\s*)?[-+]?\d+(?:\.\d+)?(?:\s*\})?(?:\s*\$)?"
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_ALTERNATIVES = re.compile(
    r"(?:\banswer\b|\bis\b|\bare\b|\bbe\b|\beither\b)[\s:*]*"  # the chain states the answer, not a list in prose
    rf"{_NUMBER_TOKEN}(?:\s*(?:,\s*)?(?:\bor\b|,)\s+(?:maybe\s+|perhaps\s+|possibly\s+)?{_NUMBER_TOKEN})+",
    re.IGNORECASE,
)
_NUMBER_TOKENS = re.compile(_NUMBER_TOKEN)
_OR_WORD = re.compile(r"\bor\b", re.IGNORECASE)
_HAS_DIGIT_OR_MATH = re.compile(r"[\d$\\]")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_FINAL_ANSWER = re.compile(r"final answer", re.IGNORECASE)


def final_boxes(text: str) -> list[str]:
    """Distinct boxed answers (as written, up to spacing) after the last "final answer" phrase, else in the text.

    Boxes before that phrase are intermediate results: math-verify ranks the phrase above boxes, so they are not
    what is graded.
    """
    phrases = list(_FINAL_ANSWER.finditer(text))
    final_region = text[phrases[-1].end() :] if phrases else text
    return list(dict.fromkeys(normalize_answer(content) for content in outer_boxed_contents(final_region)))


def alternatives_offered(text: str) -> int:
    """Distinct numbers in the longest "or" chain that states the answer in the last sentence holding math.

    ``the answer is 3 or 4 or 5`` -> 3, ``It is either 3 or 4`` -> 2, ``\\boxed{4} or maybe 5`` -> 2; a
    restatement of one value (``0.5, or 0.50``) -> 1, a list without "or" (``1, 2, 3``: a set or tuple) -> 0.
    """
    longest = 0
    for chain in _ALTERNATIVES.finditer(_last_sentence_with_math(text)):
        if _OR_WORD.search(chain.group()):
            tokens = _NUMBER_TOKENS.findall(chain.group())
            values = {Fraction(_NUMBER.search(token).group()) for token in tokens}
            longest = max(longest, len(values))
    return longest


def _last_sentence_with_math(text: str) -> str:
    for line in reversed(text.splitlines()):
        for sentence in reversed(_SENTENCE_BREAK.split(line[-MAX_ANSWER_CHARS:])):
            if _HAS_DIGIT_OR_MATH.search(sentence):
                return sentence
    return ""


def is_hedge(text: str, gold_elements: int, distinct: Callable[[list[str]], int] = len) -> bool:
    """True when the text offers more candidate answers than the gold has elements (a set gold may have many).

    Candidates: the distinct :func:`final_boxes` (``distinct`` counts them; math-verify's equality in the
    workers, so ``\\boxed{1.25}`` and ``\\boxed{\\frac{5}{4}}`` are one), or :func:`alternatives_offered`.
    """
    boxes = final_boxes(text)
    box_answers = distinct(boxes) if len(boxes) > 1 else len(boxes)
    return max(box_answers, alternatives_offered(text)) > max(1, gold_elements)


# ---------------------------------------------------------------------------------------------------------------
# Fast path: cases whose math-verify verdict is known without parsing
# ---------------------------------------------------------------------------------------------------------------

_INTEGER = re.compile(r"-?\d{1,50}")
_FINAL_ANSWER_IS = re.compile(r"final answer is", re.IGNORECASE)
# The only phrases math-verify ranks at or above a box: "final answer", then "is" within 100 characters (its
# patterns of priority 0 and 50; boxes are 50). Matched more widely here (any case, across lines): a superset.
_FINAL_ANSWER_THEN_IS = re.compile(r"final answer.{0,100}?\s+is", re.IGNORECASE | re.DOTALL)
_FINAL_ANSWER_INTEGER = re.compile(r"(?i:final answer is):?\s*\$(?P<integer>-?\d{1,50})\$\.?\s?I hope")


def fast_verdict(golds: Sequence[str], text: str) -> bool | None:
    """True/False when math-verify's verdict on ``text`` is known in advance, None when it must run.

    Settled here, against integer golds, when the text puts forward no alternatives:

    - a text whose only box is ``\\boxed{<integer>}`` and that has no "final answer ... is" (the one phrase
      math-verify ranks at or above a box; a heading such as ``**Final Answer**`` or ``Final answer:`` ranks
      below it);
    - a text whose one "final answer is" reads ``final answer is $<integer>$. I hope`` (math-verify's
      top-priority pattern, ahead of every box and every other phrase).

    math-verify then extracts exactly that integer, and two integers are equal exactly when their values are:
    ``\\boxed{32, 349}`` or ``$1,000$`` are not integers and go to math-verify. An empty text is False, and so
    is, against integer golds, a text whose last sentence offers alternatives (``the answer is 3 or 4``): an
    integer gold has one element, so the workers would call it a hedge whatever math-verify reads.
    """
    if not text.strip():
        return False
    if not golds or not all(_INTEGER.fullmatch(gold) for gold in golds):
        return None
    if alternatives_offered(text) > 1:
        return False
    integer = _sole_boxed_integer(text)
    if integer is None:
        integer = _final_answer_integer(text)
    if integer is None:
        return None
    if is_hedge(text, gold_elements=1):
        return False
    return any(int(gold) == integer for gold in golds)


def _sole_boxed_integer(text: str) -> int | None:
    boxes = _BOX_COMMANDS.findall(text)
    if len(boxes) != 1 or boxes[0] != "\\boxed" or _FINAL_ANSWER_THEN_IS.search(text):
        return None
    start = text.find("\\boxed{")
    if start < 0:
        return None
    end = text.find("}", start)
    content = text[start + len("\\boxed{") : end] if end >= 0 else ""
    return int(content) if _INTEGER.fullmatch(content) else None


def _final_answer_integer(text: str) -> int | None:
    # Only "final answer is" can start math-verify's top pattern; other "Final Answer:" headings rank lower.
    phrases = list(_FINAL_ANSWER_IS.finditer(text))
    if len(phrases) != 1:
        return None
    statement = _FINAL_ANSWER_INTEGER.match(text, phrases[0].start())
    return int(statement.group("integer")) if statement else None
