"""The README and the docs: every CIPOConfig field documented, the two commands, the tested objective."""

from dataclasses import fields
from pathlib import Path

from trl import GRPOConfig

from cipo import CIPOConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TRAINING_DOC = (ROOT / "docs" / "training.md").read_text()
STEP_DOC = (ROOT / "docs" / "training-step.md").read_text()


def test_every_field_is_documented() -> None:
    parent = {f.name for f in fields(GRPOConfig)}
    missing = [f.name for f in fields(CIPOConfig) if f.name not in parent and f"| `{f.name}` |" not in TRAINING_DOC]
    assert not missing, f"docs/training.md lacks config fields: {missing}"


def test_two_commands() -> None:
    assert "make lab" in README and "make test" in README


def test_the_documented_objective_is_the_tested_one() -> None:
    # tests/test_trainer_objective.py checks exactly this formula (weight 0 = GRPO, joint gradient = sum).
    formula = "**L = L_GRPO(originals) + correction_weight × L_GRPO(corrections)**"
    assert formula in README and formula in STEP_DOC
    objective_tests = (Path(__file__).parent / "test_trainer_objective.py").read_text()
    assert "L = L_GRPO(originals) + correction_weight x L_GRPO(corrections)" in objective_tests
    for text in (README, STEP_DOC):
        assert "split forward" not in text.lower() and "appended to the grpo batch" not in text.lower()


def test_readme_is_short_and_maps_every_doc_page() -> None:
    assert len(README.splitlines()) <= 260
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in README, f"README's documentation map lacks docs/{page.name}"
