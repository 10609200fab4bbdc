import pytest

from cipo.core.replay import ReplayController


def test_rule_moves_towards_target() -> None:
    controller = ReplayController(ratio=0.3, retention_target=0.9, bounds=(0.05, 0.75), step_size=0.5)
    assert controller.update(0.5) == pytest.approx(0.5)  # retention low: more correct anchors
    assert controller.update(1.0) == pytest.approx(0.45)  # retention high: fewer
    assert controller.update(None) == pytest.approx(0.45)  # nothing measured: unchanged


def test_bounds_hold() -> None:
    controller = ReplayController(ratio=0.7, bounds=(0.1, 0.75), step_size=10.0)
    assert controller.update(0.0) == 0.75
    assert controller.update(1.0) == 0.1


def test_fixed_when_not_adaptive() -> None:
    controller = ReplayController(ratio=0.3, adaptive=False)
    assert controller.update(0.0) == 0.3
    assert controller.last_retention == 0.0


def test_state_round_trip() -> None:
    controller = ReplayController(ratio=0.3)
    controller.update(0.2)
    restored = ReplayController(ratio=0.5)
    restored.load_state_dict(controller.state_dict())
    assert restored == controller


def test_invalid_bounds() -> None:
    with pytest.raises(ValueError, match="bounds"):
        ReplayController(ratio=0.3, bounds=(0.8, 0.2))


def test_resume_keeps_the_configured_hyperparameters_and_restores_the_state() -> None:
    saved = ReplayController(ratio=0.5, retention_target=0.9, bounds=(0.05, 0.75), step_size=0.25)
    saved.update(0.2)  # ratio 0.675
    resumed = ReplayController(ratio=0.1, retention_target=0.5, bounds=(0.1, 0.6), step_size=0.05, adaptive=False)
    resumed.load_state_dict(saved.state_dict())
    assert (resumed.retention_target, resumed.bounds, resumed.step_size, resumed.adaptive) == (0.5, (0.1, 0.6), 0.05, False)
    assert resumed.ratio == 0.6  # the saved 0.675, clipped to the bounds configured now
    assert (resumed.num_updates, resumed.last_retention) == (1, 0.2)
    assert set(saved.state_dict()) == {"ratio", "last_retention", "num_updates"}
