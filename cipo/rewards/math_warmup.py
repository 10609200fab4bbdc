"""Warm-up jobs for the math verifier's workers: common answer shapes in common completion forms.

math-verify reads LaTeX with an ANTLR parser whose prediction cache (a DFA, one per process) starts empty and
grows with every new token sequence it meets; until it has seen the usual shapes, each parse recomputes them and
costs several times more. A training run fills it within its first steps; a fresh worker fills it here, before it
counts as warm. The jobs are generated from generic shapes, not taken from any benchmark.
"""

from __future__ import annotations

import random

from cipo.rewards.math_text import Golds

# Answer shapes of competition mathematics; {a}, {b}, {c} are filled with small integers.
ANSWER_SHAPES = (
    "{a}",
    "-{b}",
    "{a}.{b}",
    "0.{c}{a}",
    "{a},{b}{c}0",
    "{a}{b},\\!{c}00",
    "\\frac{{{a}}}{{{b}}}",
    "-\\frac{{{a}}}{{{b}}}",
    "\\dfrac{{{b}}}{{{c}}}",
    "\\tfrac{{{a}}}{{{c}}}",
    "{a}/{b}",
    "\\sqrt{{{b}}}",
    "{a}\\sqrt{{{c}}}",
    "\\frac{{\\sqrt{{{b}}}}}{{{a}}}",
    "\\frac{{{a}\\sqrt{{{c}}}}}{{{b}}}",
    "{a} + {c}\\sqrt{{{b}}}",
    "\\sqrt[3]{{{b}}}",
    "{a}\\pi",
    "\\frac{{{a}\\pi}}{{{b}}}",
    "{b} - {a}\\pi",
    "{a}^{{{c}}}",
    "{a}^{{{c}}} - {b}",
    "{a}!",
    "\\binom{{{b}}}{{{c}}}",
    "({a}, {b})",
    "(-{a}, {c}, {b})",
    "\\left( {a}, \\frac{{{b}}}{{{c}}} \\right)",
    "\\left( -\\frac{{{a}}}{{{c}}}, {b} \\right)",
    "[{a}, {b}]",
    "(-{c}, {b}]",
    "(-\\infty, {a})",
    "[{b}, \\infty)",
    "(-\\infty, -{a}] \\cup [{b}, \\infty)",
    "({a}, {b}) \\cup ({b}, {c}{a})",
    "\\{{{a}, {b}, {c}\\}}",
    "{a}, {b}, {c}",
    "{a}, -{b}",
    "x^2 + {a}x - {b}",
    "{c}x^3 - {a}x + {b}",
    "{a}x - {b}",
    "y = {a}x + {b}",
    "x = {a}",
    "x \\in [{a}, {b}]",
    "x \\geq {a}",
    "x < -{c}",
    "-{a} \\le x \\le {b}",
    "{a}^\\circ",
    "{b}^{{\\circ}}",
    "{a}\\%",
    "{b}\\%",
    "\\${a}.{b}",
    "{a} + {b}i",
    "{c} - {a}i",
    "{a}i",
    "\\begin{{pmatrix}} {a} \\\\ -{b} \\end{{pmatrix}}",
    "\\begin{{pmatrix}} {a} & {c} \\\\ -{b} & 0 \\end{{pmatrix}}",
    "\\text{{(C)}}",
    "\\text{{even}}",
    "{a}{b}_{c}",
    "\\log_{{{a}}} {b}",
    "\\sin {a}^\\circ",
    "\\cos \\frac{{\\pi}}{{{a}}}",
    "e^{{{a}}}",
    "{a}n + {b}",
    "\\frac{{n({a}n + {b})}}{{{c}}}",
    "\\infty",
    "\\pm {a}",
    "{a} \\cdot {b}^{{{c}}}",
)

# Completion forms: a statement of the answer {x}, or none, after working that mentions small numbers.
COMPLETION_FORMS = (
    "We have ${a} + {b} = {s}$, so the answer is $\\boxed{{{x}}}$.",
    "Final Answer: The final answer is ${x}$. I hope it is correct.",
    "Checking $n = {a}$ and $\\frac{{{p}}}{{{a}}} = {b}$ separately, we get \\boxed{{{x}}}",
    "Since ${a} \\cdot {b} = {p}$, the result is \\[ {x} \\]",
    "Note $x^2 - {s}x + {p} = 0$ has roots {a} and {b}. **Answer:** ${x}$",
    "Subtracting, ${s} - {b} = {a}$. It remains to find $y$, which I could not finish",
)


def warm_up_jobs(seed: int = 0) -> list[tuple[Golds, str]]:
    """(golds, completion) pairs: every shape as a gold, answered in every form, rightly and wrongly."""
    rng = random.Random(seed)
    jobs: list[tuple[Golds, str]] = []
    for index, shape in enumerate(ANSWER_SHAPES):
        a, b, c = rng.randint(2, 9), rng.randint(11, 99), rng.randint(2, 7)
        gold = shape.format(a=a, b=b, c=c)
        other_shape = ANSWER_SHAPES[(index * 7 + 3) % len(ANSWER_SHAPES)]
        wrong = other_shape.format(a=c, b=a + b, c=a)
        for form_index, form in enumerate(COMPLETION_FORMS):
            answer = gold if (index + form_index) % 2 == 0 else wrong
            jobs.append(((gold,), form.format(a=a, b=b, s=a + b, p=a * b, x=answer)))
    return jobs
