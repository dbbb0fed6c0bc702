import numpy as np

from sparring.analysis.bootstrap import bootstrap_mean


def test_interval_contains_the_mean_and_is_reproducible():
    values = np.random.default_rng(1).normal(0.5, 1.0, size=400)
    estimate = bootstrap_mean(values, seed=3)
    assert estimate.low < estimate.mean < estimate.high
    assert abs(estimate.mean - values.mean()) < 1e-12
    # normal theory: the 95% interval is about +-1.96 standard errors
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert abs((estimate.high - estimate.low) / 2 - half_width) < 0.15 * half_width
    assert bootstrap_mean(values, seed=3) == estimate


def test_degenerate_inputs():
    assert bootstrap_mean([]) is None
    single = bootstrap_mean([2.0])
    assert (single.mean, single.low, single.high, single.n) == (2.0, 2.0, 2.0, 1)
    constant = bootstrap_mean([1.0] * 10)
    assert constant.low == constant.high == 1.0
