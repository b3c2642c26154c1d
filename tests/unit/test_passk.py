"""pass@k against brute-force enumeration of every k-subset of the samples."""

from __future__ import annotations

import itertools

import pytest

from emtune.evaluate.passk import pass_at_k, summarize


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_1_is_the_fraction_correct_and_large_n_is_stable():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert 0.0 < pass_at_k(1000, 1, 10) < 0.011
    assert pass_at_k(1000, 995, 10) == 1.0


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, 2, 0), (4, 2, 5), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_summarize_averages_over_problems_and_skips_k_above_n():
    correct = [[True, False, False, False], [True, True, True, True], [False, False, False, False]]
    summary = summarize(correct, [1, 2, 8])
    assert set(summary) == {"avg@4", "pass@1", "pass@2"}
    assert summary["avg@4"] == pytest.approx((0.25 + 1 + 0) / 3)
    assert summary["pass@1"] == pytest.approx(summary["avg@4"])
    expected = (brute_force_pass_at_k(4, 1, 2) + 1 + 0) / 3
    assert summary["pass@2"] == pytest.approx(expected)


def test_summarize_needs_equal_sample_counts():
    with pytest.raises(ValueError):
        summarize([[True], [True, False]], [1])
