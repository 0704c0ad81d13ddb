"""The HMM of a series of class maps against brute force: every class path of a few short series enumerated."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deep_lulc.shared.lulc.consistency import StickyChain, change_probabilities, viterbi


def path_probabilities(emissions: np.ndarray, chain: StickyChain) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Every class path of a (periods, classes, pixels) series, and its joint probability with the evidence
    per pixel: (paths, pixels)."""
    periods, n, pixels = emissions.shape
    matrix = chain.matrix()
    paths = list(itertools.product(range(n), repeat=periods))
    joint = np.empty((len(paths), pixels))
    for index, path in enumerate(paths):
        probability = np.full(pixels, 1.0 / n) * emissions[0, path[0]]
        for t in range(1, periods):
            probability = probability * matrix[path[t - 1], path[t]] * emissions[t, path[t]]
        joint[index] = probability
    return paths, joint


@pytest.mark.parametrize(("n", "periods", "rate"), [(2, 2, 0.3), (3, 3, 0.05), (3, 4, 0.2), (4, 3, 0.5), (2, 5, 0.1)])
def test_viterbi_is_the_most_probable_path(n: int, periods: int, rate: float) -> None:
    rng = np.random.default_rng(n * 100 + periods)
    emissions = rng.dirichlet(np.ones(n) * 0.7, size=(periods, 60)).transpose(0, 2, 1)  # (periods, n, pixels)
    chain = StickyChain(n, rate)
    paths, joint = path_probabilities(emissions, chain)
    expected = np.array([paths[k] for k in joint.argmax(axis=0)]).T
    decoded = viterbi(emissions, chain)
    assert decoded.shape == (periods, 60)
    assert np.array_equal(decoded, expected)


@pytest.mark.parametrize(("n", "periods", "rate"), [(2, 2, 0.3), (3, 3, 0.05), (3, 4, 0.2), (4, 3, 0.5), (2, 5, 0.1)])
def test_change_probabilities_equal_enumeration(n: int, periods: int, rate: float) -> None:
    rng = np.random.default_rng(n * 10 + periods)
    emissions = rng.dirichlet(np.ones(n), size=(periods, 50)).transpose(0, 2, 1)
    emissions[:, :, :5] *= 1e-30  # tiny likelihoods: the scaled messages must not underflow
    chain = StickyChain(n, rate)
    paths, joint = path_probabilities(emissions, chain)
    posterior = joint / joint.sum(axis=0)
    expected = np.zeros((periods - 1, 50))
    for index, path in enumerate(paths):
        for t in range(periods - 1):
            if path[t] != path[t + 1]:
                expected[t] += posterior[index]
    np.testing.assert_allclose(change_probabilities(emissions, chain), expected, rtol=1e-9, atol=1e-12)


def test_pixels_may_have_any_shape_and_float32_works() -> None:
    rng = np.random.default_rng(3)
    emissions = rng.dirichlet(np.ones(3), size=(4, 5, 6)).transpose(0, 3, 1, 2)  # (periods, n, rows, cols)
    chain = StickyChain(3, 0.1)
    flat = emissions.reshape(4, 3, 30)
    assert np.array_equal(viterbi(emissions, chain), viterbi(flat, chain).reshape(4, 5, 6))
    changed = change_probabilities(emissions.astype(np.float32), chain)
    assert changed.dtype == np.float32
    np.testing.assert_allclose(changed, change_probabilities(flat, chain).reshape(3, 5, 6), atol=1e-5)


def test_a_weak_flicker_is_outvoted_and_a_lasting_change_is_kept() -> None:
    # Pixel 0: A, weakly B, A. Pixel 1: A, then B for good, both sure. Pixel 2: no evidence in the middle.
    a_sure, b_weak, b_sure, none = [0.97, 0.03], [0.4, 0.6], [0.03, 0.97], [1.0, 1.0]
    emissions = np.array(
        [
            [a_sure, a_sure, a_sure],
            [b_weak, b_sure, none],
            [a_sure, b_sure, b_sure],
        ]
    ).transpose(0, 2, 1)
    chain = StickyChain(2, 0.05)
    path = viterbi(emissions, chain).T.tolist()
    assert path[:2] == [[0, 0, 0], [0, 1, 1]]
    assert path[2] in ([0, 0, 1], [0, 1, 1])  # the two are equally likely
    changed = change_probabilities(emissions, chain)
    assert (changed[:, 0] < 0.1).all()  # the flicker is no change at all
    assert changed[0, 1] > 0.5  # the lasting change happened between the first two periods (more likely than
    assert changed[1, 1] < 0.1  # not: two sure periods against one, under a prior that makes change rare)
    assert changed[0, 2] == pytest.approx(changed[1, 2])  # the silent middle period cannot say when it changed
    assert 0.25 < changed[0, 2] < 0.5


def test_a_single_class_or_period_never_changes_and_bad_chains_are_refused() -> None:
    assert viterbi(np.ones((3, 1, 4)), StickyChain(1, 0.1)).tolist() == [[0] * 4] * 3
    assert change_probabilities(np.ones((3, 1, 4)), StickyChain(1, 0.1)).tolist() == [[0.0] * 4] * 2
    assert change_probabilities(np.ones((1, 2, 4)), StickyChain(2, 0.1)).shape == (0, 4)
    assert viterbi(np.array([[[0.2], [0.8]]]), StickyChain(2, 0.1)).tolist() == [[1]]
    with pytest.raises(ValueError, match="change_rate"):
        StickyChain(3, 1.0)
    with pytest.raises(ValueError, match="periods"):
        viterbi(np.ones((3, 2, 4)), StickyChain(3, 0.1))
    np.testing.assert_allclose(StickyChain(3, 0.1).matrix().sum(axis=1), 1.0)
