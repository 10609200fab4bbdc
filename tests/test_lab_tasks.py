"""The lab's synthetic task: seeded, disjoint splits, gold solutions right and slips wrong under the real verifier."""

from __future__ import annotations

import random

import pytest

from cipo.core.prompts import DEFAULT_INSTRUCTION, build_correction_prompt
from cipo.lab.tasks import (
    LEVELS,
    TaskConfig,
    base_reachable,
    first_wrong_step,
    format_solution,
    make_splits,
    make_test_split,
    review_target,
    run_steps,
    solve,
    solve_with_one_slip,
    take_train_problems,
)
from cipo.lab.warmstart import WarmStartConfig, config_hash, make_examples
from cipo.rewards.math import math_reward


def test_generators_are_seeded():
    config = TaskConfig(test_size=30)
    assert make_test_split(config) == make_test_split(config)
    assert make_test_split(config) != make_test_split(TaskConfig(test_size=30, seed=config.seed + 1))
    first = make_splits(config, 50).train
    assert first == make_splits(config, 50).train


def test_splits_are_disjoint_and_cover_the_levels():
    config = TaskConfig(levels=(1, 2, 3), test_size=60)
    splits = make_splits(config, 3000)
    test_expressions = {p.expression for p in splits.test}
    assert len(test_expressions) == 60 + config.hard_test_size  # no duplicates in the test split
    assert not test_expressions & {p.expression for p in splits.train}
    assert {p.level for p in splits.test} == {1, 2, 3, *config.hard_levels}
    for problem in splits.test:
        num_terms, max_operand = LEVELS[problem.level]
        assert len(problem.terms) == num_terms and max(problem.terms) <= max_operand


def test_gold_solutions_verify_and_slips_do_not():
    rng = random.Random(0)
    problems = make_test_split(TaskConfig(levels=(1, 2, 3, 4, 5), hard_levels=(), test_size=50))
    gold = [format_solution(run_steps(p, slips={})) for p in problems]
    slipped = [format_solution(solve_with_one_slip(p, rng)) for p in problems]
    answers = [str(p.answer) for p in problems]
    assert math_reward(gold, answers) == [1.0] * len(problems)
    assert math_reward(slipped, answers) == [0.0] * len(problems)
    conversational = [[{"role": "assistant", "content": text}] for text in gold]
    assert math_reward(conversational, answers) == [1.0] * len(problems)


def test_a_slip_is_one_local_near_miss():
    rng = random.Random(1)
    for problem in make_test_split(TaskConfig(levels=(3,), test_size=20)):
        steps = solve_with_one_slip(problem, rng)
        wrong = [i for i, step in enumerate(steps) if not step.is_locally_correct]
        assert len(wrong) == 1
        error = steps[wrong[0]].result - (steps[wrong[0]].left + (1 if steps[wrong[0]].op == "+" else -1) * steps[wrong[0]].right)
        assert abs(error) in (1, 10)
        assert steps[-1].result != problem.answer


def test_review_keeps_correct_attempts_and_fixes_from_the_first_slip():
    rng = random.Random(2)
    problem = make_test_split(TaskConfig(levels=(3,), test_size=1))[0]
    gold = run_steps(problem, slips={})
    assert review_target(problem, gold, rng, slip_rate=1.0) == gold  # a correct attempt is kept as is
    attempt = solve_with_one_slip(problem, rng)
    fixed = review_target(problem, attempt, rng, slip_rate=0.0)
    assert fixed == gold
    wrong = first_wrong_step(attempt)
    assert fixed[:wrong] == attempt[:wrong]


def test_slip_rate_controls_accuracy():
    rng = random.Random(3)
    problems = make_test_split(TaskConfig(levels=(2,), test_size=200))
    assert all(solve(p, rng, 0.0)[-1].result == p.answer for p in problems)
    accuracy = sum(solve(p, rng, 0.3)[-1].result == p.answer for p in problems) / len(problems)
    assert accuracy == pytest.approx(0.7**3, abs=0.12)


def test_warm_start_reviews_use_the_training_time_correction_prompt():
    examples = make_examples(TaskConfig(), WarmStartConfig(review_fraction=0.5), 40)
    reviews = [ex for ex in examples if len(ex.prompt) == 3]
    assert 5 < len(reviews) < 35
    for example in reviews:
        problem, attempt, instruction = example.prompt
        assert instruction == {"role": "user", "content": DEFAULT_INSTRUCTION}
        assert example.prompt == build_correction_prompt([problem], attempt["content"])
        assert example.completion.endswith("}") and "\\boxed{" in example.completion


def test_the_hard_tail_extends_the_test_split_and_the_rl_stream_only():
    config = TaskConfig(levels=(1, 2, 3), hard_levels=(4,), test_size=30, hard_test_size=12)
    plain = TaskConfig(levels=(1, 2, 3), hard_levels=(), test_size=30)
    test = make_test_split(config)
    assert test[:30] == make_test_split(plain)  # the base problems are those of a split without a tail
    hard = test[30:]
    assert len(hard) == 12 and {p.level for p in hard} == {4}
    assert not any(base_reachable(p, config.levels) for p in hard)  # never a problem the warm start trains on
    exclude = {p.expression for p in test}
    rl_levels = {p.level for p in take_train_problems(config, "rl", 400, exclude)}
    sft_levels = {p.level for p in take_train_problems(config, "sft-0", 400, exclude)}
    assert rl_levels == {1, 2, 3, 4} and sft_levels == {1, 2, 3}


def test_the_hard_tail_leaves_the_warm_start_unchanged():
    with_tail = TaskConfig(hard_levels=(4,), hard_test_size=24)
    without = TaskConfig(hard_levels=(), hard_test_size=0)
    warm = WarmStartConfig()
    assert config_hash(with_tail, warm) == config_hash(without, warm)
    assert make_examples(with_tail, warm, 300) == make_examples(without, warm, 300)


def test_hard_levels_must_exist_and_stay_apart_from_the_warm_start_levels():
    with pytest.raises(ValueError, match="hard_levels"):
        make_test_split(TaskConfig(levels=(1, 4), hard_levels=(4,)))
    with pytest.raises(ValueError, match="level 9"):
        make_test_split(TaskConfig(hard_levels=(9,)))


def test_level_0_is_one_operation_on_two_digits():
    problems = make_test_split(TaskConfig(levels=(0,), test_size=40, hard_levels=(1,), hard_test_size=8))
    base, hard = problems[:40], problems[40:]
    assert all(len(p.terms) == 2 and max(p.terms) <= 9 for p in base)
    assert all(len(p.terms) == 3 for p in hard)
    assert all(p.answer >= 0 for p in problems)


def test_the_instruction_follows_every_problem_of_both_splits_and_changes_nothing_else():
    instruction = "Answer with only the final result in \\boxed{}."
    plain = TaskConfig(levels=(0,), test_size=12, hard_levels=(1,), hard_test_size=4)
    told = TaskConfig(levels=(0,), test_size=12, hard_levels=(1,), hard_test_size=4, instruction=instruction)
    test, plain_test = make_test_split(told), make_test_split(plain)
    assert test == plain_test  # the same problems: the instruction is not part of a problem's identity
    for problem, bare in zip(test, plain_test, strict=True):
        assert problem.messages() == [{"role": "user", "content": f"{bare.text} {instruction}"}]
        assert bare.messages() == [{"role": "user", "content": bare.text}]
    exclude = {p.expression for p in test}
    train = take_train_problems(told, "rl", 50, exclude)
    assert train == take_train_problems(plain, "rl", 50, exclude)
    assert all(p.messages()[0]["content"].endswith(instruction) for p in train)


def test_an_empty_instruction_leaves_the_warm_start_hash_as_it_was():
    from cipo.lab.config import quick

    config = quick()  # the hash of the quick preset's warm start before task.instruction existed
    assert config_hash(config.task, config.model, config.warm_start) == "debd62f2cdd5"
    warm = WarmStartConfig()
    assert config_hash(TaskConfig(), warm) == config_hash(TaskConfig(instruction=""), warm)
    assert config_hash(TaskConfig(), warm) != config_hash(TaskConfig(instruction="Be brief."), warm)
