"""The README documents every CIPOConfig field and the two commands."""

from dataclasses import fields
from pathlib import Path

from trl import GRPOConfig

from cipo import CIPOConfig

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_field_is_documented() -> None:
    parent = {f.name for f in fields(GRPOConfig)}
    missing = [f.name for f in fields(CIPOConfig) if f.name not in parent and f"| `{f.name}` |" not in README]
    assert not missing, f"README lacks config fields: {missing}"


def test_two_commands() -> None:
    assert "make lab" in README and "make test" in README


def test_the_documented_objective_is_the_tested_one() -> None:
    # tests/test_trainer_objective.py checks exactly this formula (weight 0 = GRPO, joint gradient = sum).
    assert "**L = L_GRPO(originals) + correction_weight × L_GRPO(corrections)**" in README
    objective_tests = (Path(__file__).parent / "test_trainer_objective.py").read_text()
    assert "L = L_GRPO(originals) + correction_weight x L_GRPO(corrections)" in objective_tests
    assert "split forward" not in README.lower() and "appended to the gRPO batch".lower() not in README.lower()
