"""The stratified estimators of Olofsson et al. (2014): the paper's worked example, closed forms, coverage."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.area_estimation import (
    PAPER_AREAS_HA,
    PAPER_COUNTS,
    PAPER_PIXELS,
    PAPER_PRODUCERS,
    PAPER_TOTAL_HA,
    PAPER_USERS,
    coverage,
    units_of,
)
from deep_lulc.shared.lulc.estimation import Z95, allocate, estimate


def olofsson_closed_forms(pixels: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray | float]:
    """The paper's equations, written out independently of the product's general (Stehman) form.

    1. Stratum weights: W_i = N_i / N (eq. 1's weights).
    2. Error matrix in area proportions: p_ij = W_i * n_ij / n_i. (eq. 9).
    3. Area proportion of reference class j: p_.j = sum_i p_ij; area A_j = A * p_.j (eq. 9 and 11).
    4. Its standard error: S(p_.j) = sqrt(sum_i W_i^2 * (n_ij/n_i.) * (1 - n_ij/n_i.) / (n_i. - 1)) (eq. 10);
       S(A_j) = A * S(p_.j); the 95 % interval is +- 1.96 * S(A_j).
    5. User's accuracy of map class i: U_i = p_ii / p_i. = n_ii / n_i. (eq. 2); V(U_i) = U_i (1 - U_i) / (n_i. - 1)
       (eq. 5).
    6. Producer's accuracy of reference class j: P_j = p_jj / p_.j (eq. 3), with (eq. 6, N_j. map pixels of j,
       N_.j = sum_i N_i. n_ij / n_i. the estimated reference pixels of j)
       V(P_j) = 1/N_.j^2 * [N_j.^2 (1 - P_j)^2 U_j (1 - U_j) / (n_j. - 1)
                             + P_j^2 * sum_{i != j} N_i.^2 (n_ij/n_i.) (1 - n_ij/n_i.) / (n_i. - 1)].
    7. Overall accuracy: O = sum_j p_jj (eq. 1); V(O) = sum_i W_i^2 U_i (1 - U_i) / (n_i. - 1) (eq. 4).
    """
    weights = pixels / pixels.sum()
    row_totals = counts.sum(axis=1)
    shares = counts / row_totals[:, None]
    proportions = weights[:, None] * shares
    reference = proportions.sum(axis=0)
    area_se = np.sqrt((weights[:, None] ** 2 * shares * (1 - shares) / (row_totals[:, None] - 1)).sum(axis=0))
    users = np.diag(shares)
    users_se = np.sqrt(users * (1 - users) / (row_totals - 1))
    producers = np.diag(proportions) / reference
    reference_pixels = (pixels[:, None] * shares).sum(axis=0)
    producers_se = np.empty(len(pixels))
    for j in range(len(pixels)):
        own = pixels[j] ** 2 * (1 - producers[j]) ** 2 * users[j] * (1 - users[j]) / (row_totals[j] - 1)
        others = sum(
            pixels[i] ** 2 * shares[i, j] * (1 - shares[i, j]) / (row_totals[i] - 1)
            for i in range(len(pixels))
            if i != j
        )
        producers_se[j] = np.sqrt((own + producers[j] ** 2 * others) / reference_pixels[j] ** 2)
    overall = float(np.trace(proportions))
    overall_se = float(np.sqrt((weights**2 * users * (1 - users) / (row_totals - 1)).sum()))
    return {
        "proportions": proportions,
        "area": reference,
        "area_se": area_se,
        "users": users,
        "users_se": users_se,
        "producers": producers,
        "producers_se": producers_se,
        "overall": overall,
        "overall_se": overall_se,
    }


def test_reproduces_the_worked_example_of_olofsson_2014() -> None:
    """Every estimate and interval of section 5, as the paper prints them (areas in ha, accuracies to two
    decimals): deforestation 21,158 +- 6,158 ha with user's accuracy 0.88 +- 0.07, and so on.

    The steps (the closed forms of `olofsson_closed_forms`): weights W_i = N_i/N; area proportions
    p_ij = W_i n_ij / n_i.; area A * sum_i p_ij with SE A * sqrt(sum_i W_i^2 (n_ij/n_i.)(1 - n_ij/n_i.)/(n_i. - 1));
    user's accuracy n_ii/n_i. with variance U(1-U)/(n_i. - 1); producer's accuracy p_jj/p_.j with the paper's
    eq. 6 variance; overall accuracy sum_j p_jj with variance sum_i W_i^2 U_i (1-U_i)/(n_i. - 1); every 95 %
    interval is +- 1.96 SE.
    """
    strata, reference = units_of(PAPER_COUNTS)
    found = estimate(PAPER_PIXELS, np.arange(4), strata, reference, categories=4)
    areas = [round(c.share.value * PAPER_TOTAL_HA) for c in found.categories]
    intervals = [round(c.share.ci95 * PAPER_TOTAL_HA) for c in found.categories]
    assert areas == [area for area, _ in PAPER_AREAS_HA] == [21_158, 11_686, 285_770, 581_386]
    assert intervals == [half for _, half in PAPER_AREAS_HA] == [6_158, 3_756, 15_510, 16_282]
    users = [(round(c.users.value, 2), round(c.users.ci95, 2)) for c in found.categories if c.users]
    assert users == PAPER_USERS == [(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)]
    producers = [(round(c.producers.value, 2), round(c.producers.ci95, 2)) for c in found.categories if c.producers]
    assert producers == PAPER_PRODUCERS
    assert (round(found.overall.value, 2), round(found.overall.ci95, 2)) == (0.95, 0.02)
    # the mapped areas the estimates correct: 18,000 ha of deforestation mapped, 21,158 estimated
    assert [round(c.mapped_share * PAPER_TOTAL_HA) for c in found.categories] == [18_000, 13_500, 288_000, 580_500]
    assert Z95 == 1.96


def test_general_estimators_equal_the_papers_closed_forms() -> None:
    """The product's ratio-estimator form and the paper's equations agree to rounding error on the example
    and on random count matrices."""
    rng = np.random.default_rng(3)
    cases = [(PAPER_PIXELS, PAPER_COUNTS)]
    for _ in range(5):
        k = int(rng.integers(2, 6))
        cases.append(
            (rng.integers(1_000, 1_000_000, size=k), rng.integers(1, 60, size=(k, k)) + np.eye(k, dtype=int) * 80)
        )
    for pixels, counts in cases:
        k = len(pixels)
        strata, reference = units_of(counts)
        found = estimate(pixels, np.arange(k), strata, reference, categories=k)
        expected = olofsson_closed_forms(pixels.astype(float), counts.astype(float))
        np.testing.assert_allclose(found.proportions, expected["proportions"], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose([c.share.value for c in found.categories], expected["area"], rtol=1e-10)
        np.testing.assert_allclose([c.share.se for c in found.categories], expected["area_se"], rtol=1e-10)
        np.testing.assert_allclose([c.users.value for c in found.categories if c.users], expected["users"], rtol=1e-10)
        np.testing.assert_allclose([c.users.se for c in found.categories if c.users], expected["users_se"], rtol=1e-9)
        np.testing.assert_allclose(
            [c.producers.value for c in found.categories if c.producers], expected["producers"], rtol=1e-10
        )
        np.testing.assert_allclose(
            [c.producers.se for c in found.categories if c.producers], expected["producers_se"], rtol=1e-9
        )
        assert found.overall.value == pytest.approx(expected["overall"], rel=1e-10)
        assert found.overall.se == pytest.approx(expected["overall_se"], rel=1e-9)


def test_a_census_stratum_has_no_sampling_error_and_an_unmapped_class_no_users_accuracy() -> None:
    pixels = np.array([1_000, 3, 0])
    strata = np.array([0] * 40 + [1] * 3)
    reference = np.array([0] * 36 + [2] * 4 + [1, 1, 1])
    found = estimate(pixels, np.arange(3), strata, reference, categories=3)
    assert found.categories[1].share.value == pytest.approx(3 / 1_003)
    assert found.categories[1].share.se == 0.0  # all three pixels were labelled
    assert found.categories[2].users is None  # the map shows none of class 2 ...
    assert found.categories[2].share.value == pytest.approx(1_000 / 1_003 * 4 / 40)  # ... the sample finds some


def test_allocation_gives_every_stratum_its_floor_and_the_rest_by_area() -> None:
    counts = allocate({1: 10, 2: 1_000, 3: 100_000, 4: 0}, size=300, minimum=50)
    assert counts == {1: 10, 2: 52, 3: 238}  # a 10-pixel stratum is sampled whole; empty strata get nothing
    assert sum(counts.values()) == 300
    assert allocate({1: 10, 2: 1_000, 3: 100_000}, size=30, minimum=50) == {1: 10, 2: 50, 3: 50}
    assert allocate({1: 5, 2: 5}, size=100, minimum=2) == {1: 5, 2: 5}  # never more than a stratum holds


def test_intervals_cover_the_true_transition_areas_95_percent_of_the_time() -> None:
    """1,000 independent seeded samples (2,000 points, at least 120 per stratum) of a simulated change map
    whose truth is known for every pixel (`benchmarks.area_estimation.simulated_change_map`): each
    transition's 95 % interval covers its true area in 93-97 % of the draws, and the error-adjusted areas are
    on average far closer to the truth than the map's pixel counts."""
    found = coverage(1_000)
    rows = found["transitions"].values()
    print("coverage per transition:", {name: row["coverage"] for name, row in found["transitions"].items()})
    assert all(0.93 <= row["coverage"] <= 0.97 for row in rows), found["transitions"]
    assert all(row["mean_abs_error_estimate_px"] < row["abs_error_pixel_count_px"] for row in rows)
    estimate_error = sum(row["mean_abs_error_estimate_px"] for row in rows)
    assert estimate_error < 0.25 * sum(row["abs_error_pixel_count_px"] for row in rows)
