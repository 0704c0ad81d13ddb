"""The features stage's temporal interpolation against a per-pixel `np.interp` reference (eo-learn semantics)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from deep_lulc.stages.features.interpolation import interpolate_to_grid, valid_count

Floats = npt.NDArray[np.float32]
Days = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]


def reference(values: Floats, valid: Mask, source_days: Days, target_days: Days) -> Floats:
    """The obvious implementation: np.interp over each pixel's valid observations; np.interp holds the ends."""
    _, n_c, n_y, n_x = values.shape
    out = np.full((len(target_days), n_c, n_y, n_x), np.nan, dtype=np.float32)
    for y, x in np.ndindex(n_y, n_x):
        ok = valid[:, y, x]
        if not ok.any():
            continue
        for c in range(n_c):
            out[:, c, y, x] = np.interp(target_days, source_days[ok], values[ok, c, y, x].astype(np.float64))
    return out


def with_garbage(values: Floats, valid: Mask, rng: np.random.Generator) -> Floats:
    """Overwrite invalid observations with NaN, infinities and huge numbers, as a cloudy read may hold."""
    garbage = rng.choice(np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e20], dtype=np.float32), values.shape)
    invalid = ~np.broadcast_to(valid[:, None], values.shape)
    return np.where(invalid, garbage, values).astype(np.float32)


def random_case(seed: int, shape: tuple[int, int, int, int] = (17, 3, 11, 13)) -> tuple[Floats, Mask, Days, Days]:
    rng = np.random.default_rng(seed)
    n_t, _, n_y, n_x = shape
    values = rng.uniform(-1, 1, shape).astype(np.float32)
    valid = rng.random((n_t, n_y, n_x)) < rng.uniform(0.1, 0.9)
    valid[:, 0, 0] = False  # one pixel never valid
    valid[:, 0, 1] = False
    valid[rng.integers(n_t), 0, 1] = True  # one pixel valid exactly once
    source_days = np.cumsum(rng.uniform(1.0, 9.0, n_t)) + 100.0
    # Targets from before the first to after the last source day, some landing exactly on source days.
    grid = np.linspace(source_days[0] - 12.0, source_days[-1] + 12.0, 19)
    target_days = np.sort(np.concatenate([grid, rng.choice(source_days, 4, replace=False)]))
    return with_garbage(values, valid, rng), valid, source_days, target_days


@pytest.mark.parametrize("seed", range(8))
def test_matches_reference_on_random_masks(seed: int) -> None:
    values, valid, source_days, target_days = random_case(seed)
    result = interpolate_to_grid(values, valid, source_days, target_days)
    assert result.dtype == np.float32
    assert result.shape == (len(target_days), values.shape[1], values.shape[2], values.shape[3])
    np.testing.assert_allclose(result, reference(values, valid, source_days, target_days), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", range(3))
def test_matches_reference_on_blob_clouds_and_many_rows(seed: int) -> None:
    # Enough rows for every thread to get several, and clouds in runs of frames as well as in space.
    rng = np.random.default_rng(100 + seed)
    n_t, n_c, n_y, n_x = 24, 2, 40, 31
    values = rng.normal(size=(n_t, n_c, n_y, n_x)).astype(np.float32)
    cloud_rows = rng.random((n_t, n_y, 1)) < 0.3
    cloud_cols = rng.random((n_t, 1, n_x)) < 0.3
    valid = ~(cloud_rows | cloud_cols)
    source_days = np.arange(n_t, dtype=np.float64) * 6.0 + rng.uniform(0.0, 3.0)
    target_days = np.arange(0.0, source_days[-1] + 30.0, 16.0, dtype=np.float64)
    values = with_garbage(values, valid, rng)
    result = interpolate_to_grid(values, valid, source_days, target_days)
    np.testing.assert_allclose(result, reference(values, valid, source_days, target_days), rtol=1e-6, atol=1e-7)


def test_hand_computed_series() -> None:
    # One pixel, observations at days 0 (invalid), 10, 20 (invalid), 30, 40 (invalid).
    values = np.array([999.0, 1.0, -999.0, 4.0, np.nan], dtype=np.float32).reshape(5, 1, 1, 1)
    valid = np.array([False, True, False, True, False]).reshape(5, 1, 1)
    source_days = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    target_days = np.array([-5.0, 0.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 100.0])
    result = interpolate_to_grid(values, valid, source_days, target_days)[:, 0, 0, 0]
    expected = np.array([1.0, 1.0, 1.0, 1.75, 2.5, 3.25, 4.0, 4.0, 4.0], dtype=np.float32)
    np.testing.assert_array_equal(result, expected)


def test_all_invalid_pixel_is_nan_and_others_are_not() -> None:
    values, valid, source_days, target_days = random_case(1)
    result = interpolate_to_grid(values, valid, source_days, target_days)
    assert np.isnan(result[:, :, 0, 0]).all()
    seen = valid_count(valid) > 0
    assert not np.isnan(result[:, :, seen]).any()
    assert np.isnan(result[:, :, ~seen]).all()


def test_single_valid_observation_is_held_everywhere() -> None:
    rng = np.random.default_rng(7)
    values = with_garbage(rng.random((9, 4, 1, 1), dtype=np.float32), np.zeros((9, 1, 1), dtype=bool), rng)
    valid = np.zeros((9, 1, 1), dtype=bool)
    valid[5] = True
    values[5] = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32).reshape(4, 1, 1)
    result = interpolate_to_grid(values, valid, np.arange(9.0) * 5, np.arange(-10.0, 60.0, 3.0))
    np.testing.assert_array_equal(result[:, :, 0, 0], np.broadcast_to(values[5, :, 0, 0], (result.shape[0], 4)))


def test_invalid_first_and_last_frames_hold_the_nearest_valid_value() -> None:
    rng = np.random.default_rng(3)
    values = rng.random((6, 2, 3, 3), dtype=np.float32)
    valid = np.ones((6, 3, 3), dtype=bool)
    valid[[0, 5]] = False
    values = with_garbage(values, valid, rng)
    source_days = np.array([0.0, 6.0, 12.0, 18.0, 24.0, 30.0])
    result = interpolate_to_grid(values, valid, source_days, np.array([-3.0, 0.0, 3.0, 27.0, 30.0, 33.0]))
    for k in range(3):
        np.testing.assert_array_equal(result[k], values[1])
    for k in range(3, 6):
        np.testing.assert_array_equal(result[k], values[4])


def test_valid_observation_exactly_at_a_target_gives_its_value() -> None:
    rng = np.random.default_rng(11)
    # Neighbours far apart in magnitude, so any interpolation arithmetic at the exact day would show.
    values = np.stack([np.full((2, 4, 4), 3e30), rng.random((2, 4, 4)), np.full((2, 4, 4), -7e29)]).astype(np.float32)
    valid = np.ones((3, 4, 4), dtype=bool)
    source_days = np.array([1.0, 4.3, 9.7])
    result = interpolate_to_grid(values, valid, source_days, np.array([4.3]))
    np.testing.assert_array_equal(result[0], values[1])


def test_garbage_at_invalid_observations_never_leaks() -> None:
    values, valid, source_days, target_days = random_case(5)
    first = interpolate_to_grid(values, valid, source_days, target_days)
    other = with_garbage(values, valid, np.random.default_rng(99))
    cleaned = np.where(np.broadcast_to(valid[:, None], values.shape), values, np.float32(0)).astype(np.float32)
    np.testing.assert_array_equal(interpolate_to_grid(other, valid, source_days, target_days), first)
    np.testing.assert_array_equal(interpolate_to_grid(cleaned, valid, source_days, target_days), first)


def test_targets_entirely_outside_the_source_range() -> None:
    values, valid, source_days, _ = random_case(2)
    before = source_days[0] - np.array([30.0, 20.0, 10.0])
    after = source_days[-1] + np.array([10.0, 20.0])
    targets = np.concatenate([before, after])
    result = interpolate_to_grid(values, valid, source_days, targets)
    np.testing.assert_array_equal(result, reference(values, valid, source_days, targets))


def test_duplicate_targets_and_integer_days() -> None:
    values, valid, _, _ = random_case(4, shape=(5, 2, 3, 4))
    source_days = np.array([0, 5, 10, 15, 20])
    targets = np.array([2, 2, 5, 5, 19])
    result = interpolate_to_grid(values, valid, source_days, targets)
    expected = reference(values, valid, source_days.astype(np.float64), targets.astype(np.float64))
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)


def test_non_contiguous_input_gives_the_same_result() -> None:
    values, valid, source_days, target_days = random_case(6)
    flipped_values = np.ascontiguousarray(values[:, :, :, ::-1])[:, :, :, ::-1]
    flipped_valid = np.ascontiguousarray(valid[:, :, ::-1])[:, :, ::-1]
    assert not flipped_values.flags.c_contiguous
    np.testing.assert_array_equal(
        interpolate_to_grid(flipped_values, flipped_valid, source_days, target_days),
        interpolate_to_grid(values, valid, source_days, target_days),
    )


def test_empty_targets_and_no_frames() -> None:
    values, valid, source_days, _ = random_case(0, shape=(4, 2, 3, 3))
    assert interpolate_to_grid(values, valid, source_days, np.array([])).shape == (0, 2, 3, 3)
    none = interpolate_to_grid(values[:0], valid[:0], source_days[:0], np.array([1.0, 2.0]))
    assert none.shape == (2, 2, 3, 3)
    assert none.dtype == np.float32
    assert np.isnan(none).all()


def test_valid_count() -> None:
    valid = np.random.default_rng(0).random((7, 5, 6)) < 0.4
    counts = valid_count(valid)
    assert counts.shape == (5, 6)
    assert np.issubdtype(counts.dtype, np.integer)
    for y, x in np.ndindex(5, 6):
        assert counts[y, x] == sum(bool(valid[t, y, x]) for t in range(7))
    with pytest.raises(ValueError, match="bool"):
        valid_count(valid.astype(np.uint8))


def _good() -> tuple[Floats, Mask, Days, Days]:
    return np.zeros((3, 2, 4, 5), dtype=np.float32), np.ones((3, 4, 5), dtype=bool), np.arange(3.0), np.arange(2.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v, m, s, t: (v.astype(np.float64), m, s, t), r"values must be float32, got float64"),
        (lambda v, m, s, t: (v[0], m, s, t), r"values must be a 4-D \(T, C, Y, X\) array"),
        (lambda v, m, s, t: (v, m.astype(np.uint8), s, t), r"valid must be bool, got uint8"),
        (lambda v, m, s, t: (v, m[:, None], s, t), r"valid must be a 3-D \(T, Y, X\) array"),
        (lambda v, m, s, t: (v, m[:, :, :4], s, t), r"valid shape \(3, 4, 4\) does not match values"),
        (lambda v, m, s, t: (v, m, s[:2], t), r"source_days has 2 days but values has 3 frames"),
        (lambda v, m, s, t: (v, m, s[::-1], t), r"source_days must be strictly increasing"),
        (lambda v, m, s, t: (v, m, np.array([0.0, 1.0, 1.0]), t), r"source_days must be strictly increasing"),
        (lambda v, m, s, t: (v, m, s, t[::-1]), r"target_days must be sorted"),
        (lambda v, m, s, t: (v, m, s, np.array([0.0, np.nan])), r"target_days must be finite"),
        (lambda v, m, s, t: (v, m, s.reshape(3, 1), t), r"source_days must be one-dimensional"),
        (
            lambda v, m, s, t: (v, m, np.array(["2023-01-01", "2023-01-02", "2023-01-03"], "datetime64[D]"), t),
            r"source_days must be numeric days",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(change: object, message: str) -> None:
    assert callable(change)
    values, valid, source_days, target_days = change(*_good())
    interpolate_to_grid(*_good())  # the unchanged input is fine
    with pytest.raises(ValueError, match=message):
        interpolate_to_grid(values, valid, source_days, target_days)
