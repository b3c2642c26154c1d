"""avg@n and the unbiased pass@k estimator (Chen et al., 2021) over n samples per problem."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct.

    1 - C(n-c, k) / C(n, k), computed as a running product so large n does not overflow.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def summarize(correct: Sequence[Sequence[bool]], ks: Sequence[int]) -> dict[str, float]:
    """avg@n and pass@k (for each k <= n) averaged over problems; `correct[i]` holds problem i's n samples."""
    if not correct:
        return {}
    n = len(correct[0])
    if any(len(row) != n for row in correct):
        raise ValueError("every problem needs the same number of samples")
    counts = [sum(bool(x) for x in row) for row in correct]
    summary = {f"avg@{n}": float(np.mean([c / n for c in counts]))}
    for k in ks:
        if k <= n:
            summary[f"pass@{k}"] = float(np.mean([pass_at_k(n, c, k) for c in counts]))
    return summary
