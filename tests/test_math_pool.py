"""Tests for the math verifier's worker pool (cipo.rewards.math_pool): job order by gold, warm-up.

Timeouts, crashes and process hygiene are tested through MathVerifier in test_math_verifier.py.
"""

from __future__ import annotations

import random
import time

import pytest

from cipo.rewards.math import verify_with_math_verify
from cipo.rewards.math_pool import KNOWN_GOLDS_PER_WORKER, JobQueue, VerifierPool

SLOW_MARKER = "SLOW_WARM_UP"
HANG_MARKER = "HANG_IN_WARM_UP"


def slow_on_marker(golds: tuple[str, ...], prediction: str) -> bool:
    """Worker function: 1.5 s on one marker, forever on another, otherwise the real comparison."""
    if SLOW_MARKER in prediction:
        time.sleep(1.5)
    if HANG_MARKER in prediction:
        time.sleep(3600)
    return verify_with_math_verify(golds, prediction)


def jobs_for(golds_of_jobs: list[str]) -> list[tuple[tuple[str, ...], str]]:
    return [((gold,), f"\\boxed{{{index}}}") for index, gold in enumerate(golds_of_jobs)]


def test_job_queue_keeps_a_golds_jobs_on_one_worker() -> None:
    queue = JobQueue(jobs_for(["a", "a", "a", "b", "b", "c"]))
    first: dict[tuple[str, ...], None] = {}
    second: dict[tuple[str, ...], None] = {}
    assert queue.pop_for(first) == 0  # "a"
    assert queue.pop_for(second) == 3  # "b": a gold no worker has started, not the next "a"
    assert queue.pop_for(first) == 1
    assert queue.pop_for(first) == 2
    assert queue.pop_for(first) == 5  # "a" is done: the next unstarted gold, "c"
    assert queue.pop_for(first) == 4  # nothing unstarted: it takes over "b" rather than wait
    assert not queue


def test_job_queue_prefers_golds_seen_in_earlier_batches() -> None:
    queue = JobQueue(jobs_for(["a", "b", "b"]))
    assert queue.pop_for({("b",): None}) == 1


def test_job_queue_hands_out_every_job_once() -> None:
    rng = random.Random(0)
    jobs = jobs_for([rng.choice("abcdefgh") for _ in range(300)])
    queue = JobQueue(jobs)
    workers: list[dict[tuple[str, ...], None]] = [{}, {}, {}]
    handed_out = []
    while queue:
        index = queue.pop_for(rng.choice(workers))
        if rng.random() < 0.1:  # a send that failed: the job comes back
            queue.put_back(index)
            continue
        handed_out.append(index)
    assert sorted(handed_out) == list(range(len(jobs)))


def test_put_back_job_comes_first_for_its_gold() -> None:
    queue = JobQueue(jobs_for(["a", "a"]))
    worker: dict[tuple[str, ...], None] = {}
    assert queue.pop_for(worker) == 0
    queue.put_back(0)
    assert queue.pop_for(worker) == 0


def test_known_golds_stay_bounded() -> None:
    queue = JobQueue(jobs_for(["new"]))
    known = {(str(index),): None for index in range(KNOWN_GOLDS_PER_WORKER)}
    queue.pop_for(known)
    assert known == {("new",): None}


def test_warm_up_runs_outside_the_job_deadline() -> None:
    pool = VerifierPool(num_workers=1, timeout_s=1.0, worker_fn=slow_on_marker)
    try:
        pool.warm_up([(("1",), f"{SLOW_MARKER} \\boxed{{1}}")])  # longer than a job may take
        assert pool.timeouts == 0
        assert pool.run([(("x+1",), "\\boxed{1+x}"), (("2",), "\\boxed{3}")]) == [True, False]
    finally:
        pool.close()


def test_worker_stuck_in_warm_up_is_replaced() -> None:
    pool = VerifierPool(num_workers=1, timeout_s=5.0, worker_fn=slow_on_marker)
    try:
        pool.run([(("1",), "\\boxed{1}")])
        stuck_pid = pool.worker_pids()
        pool.warm_up([(("1",), HANG_MARKER)], timeout_s=1.0)
        assert pool.worker_pids() != stuck_pid
        assert pool.run([(("1",), "\\boxed{1}")]) == [True]
    finally:
        pool.close()


def test_warm_up_rejects_a_non_positive_timeout() -> None:
    pool = VerifierPool(num_workers=1, timeout_s=5.0, worker_fn=slow_on_marker)
    with pytest.raises(ValueError, match="timeout_s"):
        pool.warm_up([], timeout_s=0)
