"""Two-stage LaTeX parsing for the verifier's workers: ANTLR's SLL prediction first, full LL only when needed.

math-verify reads LaTeX through latex2sympy, an ANTLR parser run in full LL prediction mode. ANTLR documents that
its faster SLL mode "will either return a correct parse tree (i.e. the same parse tree that would be returned
with the LL prediction mode), or it will report a syntax error"; the grammar's start rule ends with EOF, so a
finished SLL parse covers the whole input. So each parse first runs with SLL prediction and a listener that stops
at the first syntax error; on such an error (a real one, or input that needs LL) it runs again exactly as
latex2sympy runs it. Every result and every error is then LL's; only the time changes (on the benchmark mix, about
a third less worker CPU).

:func:`install` is called once in each worker process (never in the trainer's, nor for the "raw" side of the
benchmark), and does nothing if latex2sympy's internals are not the ones this was written against: parsing then
stays as it is.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

_INSTALLED_MARKER = "_cipo_two_stage_parsing"


class _SLLSyntaxError(Exception):
    """A syntax error under SLL prediction: the parse is redone in LL mode."""


def install() -> bool:
    """Make latex2sympy parse in two stages (SLL, then LL on a syntax error); True when it is in place."""
    try:
        from antlr4.atn.PredictionMode import PredictionMode
        from antlr4.error.ErrorListener import ErrorListener
        from latex2sympy2_extended import latex2sympy2
    except ImportError:
        return False
    converter = getattr(latex2sympy2, "_Latex2Sympy", None)
    if converter is None or not hasattr(converter, "create_parser") or not hasattr(converter, "parse"):
        logger.info("latex2sympy internals differ from what two-stage parsing expects; parsing left as it is")
        return False
    if getattr(converter, _INSTALLED_MARKER, None):
        return True

    class StopAtFirstError(ErrorListener):
        def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):
            raise _SLLSyntaxError(msg)

    ll_create_parser, ll_parse = converter.create_parser, converter.parse

    def create_parser(self, latex_str: str):
        parser = ll_create_parser(self, latex_str)
        if getattr(self, "_cipo_sll_stage", False):
            parser._interp.predictionMode = PredictionMode.SLL
            parser.removeErrorListeners()
            parser.addErrorListener(StopAtFirstError())
        return parser

    def parse(self, latex_str: str):
        self._cipo_sll_stage = True
        try:
            return ll_parse(self, latex_str)
        except _SLLSyntaxError:
            pass
        finally:
            self._cipo_sll_stage = False
        return ll_parse(self, latex_str)

    converter.create_parser, converter.parse = create_parser, parse
    setattr(converter, _INSTALLED_MARKER, (ll_create_parser, ll_parse))
    return True


def uninstall() -> None:
    """Back to latex2sympy's own LL-only parsing (for comparisons in tests)."""
    from latex2sympy2_extended import latex2sympy2

    converter = latex2sympy2._Latex2Sympy
    originals = getattr(converter, _INSTALLED_MARKER, None)
    if originals:
        converter.create_parser, converter.parse = originals
        setattr(converter, _INSTALLED_MARKER, None)
