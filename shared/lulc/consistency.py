"""Temporal consistency of a series of class maps: a hidden Markov model per pixel, in plain numpy.

Maps of consecutive years classified independently disagree wherever a year is unsure, and a pairwise
comparison reports every disagreement as a change: a pixel that flickers A -> B -> A changes twice, although
land rarely changes and then stays changed. Here the land's class is the hidden state of a Markov chain
that keeps its class from one period to the next with probability `1 - change_rate` and otherwise moves to
any other class with equal probability; each period's class probabilities are the evidence. Viterbi decodes
the one most probable class sequence (so a weak, lone B between two As is outvoted), and forward-backward
gives, for each consecutive pair, the probability that the class changed given every period.

Every function works on all pixels at once: `emissions` is `(periods, classes, *pixels)`, each value the
likelihood of that period's evidence under that class (the class probabilities themselves, under a uniform
prior; a value of 0 rules the class out). The chain's switch probability is the same towards every other
class, so each step costs O(classes) per pixel, not O(classes ** 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StickyChain:
    """A Markov chain over `n` classes that stays with probability `1 - change_rate` per step and spreads the
    rest evenly over the other classes; uniform over the classes at the first period."""

    n: int
    change_rate: float

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("a chain needs at least one class")
        if not 0 < self.change_rate < 1:
            raise ValueError(f"change_rate must lie strictly between 0 and 1, not {self.change_rate}")

    @property
    def stay(self) -> float:
        return 1.0 - self.change_rate

    @property
    def move(self) -> float:
        """The probability of one particular other class at the next period."""
        return self.change_rate / (self.n - 1) if self.n > 1 else 0.0

    def matrix(self) -> np.ndarray:
        """The (n, n) transition matrix, rows: from, columns: to."""
        matrix = np.full((self.n, self.n), self.move)
        np.fill_diagonal(matrix, self.stay)
        return matrix


def _flat(emissions: np.ndarray, chain: StickyChain) -> np.ndarray:
    if emissions.ndim < 2 or emissions.shape[1] != chain.n:
        raise ValueError(f"emissions of shape {emissions.shape} are not (periods, {chain.n} classes, ...)")
    if emissions.shape[0] < 1:
        raise ValueError("emissions hold no period")
    return emissions.reshape(emissions.shape[0], chain.n, -1)


def viterbi(emissions: np.ndarray, chain: StickyChain) -> np.ndarray:
    """The most probable class sequence of every pixel: (periods, *pixels) class indices.

    In log space, so long series cannot underflow. On a tie the class is kept (no change without evidence).
    """
    flat = _flat(emissions, chain)
    periods, n, pixels = flat.shape
    shape = (periods, *emissions.shape[2:])
    if n == 1:
        return np.zeros(shape, dtype=np.int64)
    with np.errstate(divide="ignore"):
        logs = np.log(flat)
    log_stay, log_move = math.log(chain.stay), math.log(chain.move)
    classes = np.arange(n)[:, None]
    columns = np.arange(pixels)
    back = np.empty((periods - 1, n, pixels), dtype=np.int16)
    delta = logs[0]  # the uniform prior adds the same constant to every path
    for t in range(1, periods):
        # The best predecessor other than k itself: the overall best, or the runner-up where k is the best.
        first = delta.argmax(axis=0)
        best = delta[first, columns]
        masked = delta.copy()
        masked[first, columns] = -np.inf
        second = masked.argmax(axis=0)
        runner_up = masked[second, columns]
        is_first = classes == first
        other = np.where(is_first, runner_up, best)
        other_arg = np.where(is_first, second, first)
        kept, moved = delta + log_stay, other + log_move
        keep = kept >= moved
        back[t - 1] = np.where(keep, classes, other_arg)
        delta = np.where(keep, kept, moved) + logs[t]
    path = np.empty((periods, pixels), dtype=np.int64)
    path[-1] = delta.argmax(axis=0)
    for t in range(periods - 2, -1, -1):
        path[t] = back[t][path[t + 1], columns]
    return path.reshape(shape)


def _normalised(values: np.ndarray) -> np.ndarray:
    """`values` scaled to sum to one over the classes (axis 0); uniform where they sum to zero."""
    total = values.sum(axis=0)
    safe = np.where(total > 0, total, 1)
    scaled: np.ndarray = np.where(total > 0, values / safe, 1.0 / values.shape[0])
    return scaled


def change_probabilities(emissions: np.ndarray, chain: StickyChain) -> np.ndarray:
    """P(class at t != class at t + 1 | every period) of every consecutive pair: (periods - 1, *pixels).

    Scaled forward-backward: the forward and backward messages are renormalised at every period, and each
    pair's posterior is a ratio of sums over the same messages, so the scale factors cancel:
    `P(same) = sum_k a_t(k) stay e_t+1(k) b_t+1(k) / sum_jk a_t(j) A(j, k) e_t+1(k) b_t+1(k)`.
    """
    flat = _flat(emissions, chain).astype(np.result_type(emissions.dtype, np.float32), copy=False)
    periods, n, pixels = flat.shape
    shape = (periods - 1, *emissions.shape[2:])
    if n == 1 or periods == 1:
        return np.zeros(shape, dtype=flat.dtype)
    stay, move = flat.dtype.type(chain.stay), flat.dtype.type(chain.move)
    forward = np.empty_like(flat)
    forward[0] = _normalised(flat[0])
    for t in range(1, periods):
        previous = forward[t - 1]  # sums to one, so the mass arriving from the other classes is 1 - previous
        forward[t] = _normalised((stay * previous + move * (1 - previous)) * flat[t])
    changed = np.empty((periods - 1, pixels), dtype=flat.dtype)
    backward = np.ones((n, pixels), dtype=flat.dtype)
    for t in range(periods - 2, -1, -1):
        ahead = flat[t + 1] * backward  # e_t+1(k) b_t+1(k)
        alpha = forward[t]
        same = stay * (alpha * ahead).sum(axis=0)
        total = ((stay * alpha + move * (alpha.sum(axis=0) - alpha)) * ahead).sum(axis=0)
        changed[t] = np.where(total > 0, 1 - same / np.where(total > 0, total, 1), 0)
        backward = _normalised(stay * ahead + move * (ahead.sum(axis=0) - ahead))
    return np.clip(changed, 0, 1).reshape(shape)
