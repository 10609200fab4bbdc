import pytest

from cipo import CIPOConfig

BASE = dict(output_dir="unused", use_cpu=True, report_to=[], per_device_train_batch_size=4, num_generations=4)


def make(**fields) -> CIPOConfig:  # noqa: ANN003
    return CIPOConfig(**{**BASE, **fields})


def test_defaults_are_valid() -> None:
    config = make()
    assert config.use_correction is True
    assert config.difficulty_band == [0.25, 0.75]
    assert config.risk_penalty == 1.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("correction_weight", -1.0),
        ("correction_num_generations", 1),
        ("correction_anchor_fraction", 1.5),
        ("replay_ratio", -0.1),
        ("retention_target", 2.0),
        ("replay_ratio_bounds", [0.8, 0.2]),
        ("replay_ratio_bounds", [0.1]),
        ("difficulty_band", [0.5, 1.5]),
        ("risk_penalty", -1.0),
        ("correction_template", "{prompt} without the attempt"),
        ("correction_max_attempt_tokens", 0),
        ("correction_micro_batch", -2),
        ("replay_step_size", -0.5),
    ],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"CIPOConfig.{field}"):
        make(**{field: value})


def test_replay_ratio_must_lie_in_its_bounds() -> None:
    with pytest.raises(ValueError, match="CIPOConfig.replay_ratio"):
        make(replay_ratio=0.9, replay_ratio_bounds=[0.1, 0.5])


def test_every_cipo_field_has_help() -> None:
    from dataclasses import fields

    from trl import GRPOConfig

    parent = {f.name for f in fields(GRPOConfig)}
    for f in fields(CIPOConfig):
        if f.name not in parent:
            assert f.metadata.get("help"), f"{f.name} has no help text"
