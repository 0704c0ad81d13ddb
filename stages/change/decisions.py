"""How each `--method` decides which pixels of every consecutive pair changed, one window at a time.

A decider sees one window of every period at once (class indices, and class probabilities when it weighs
them) and returns, for each consecutive pair, the changed mask before cleaning, the (from, to) classes,
the probability that the pixel changed (the confidence COG), and the class a change keeps on both ends
where the cleaning drops it. The same window of every pair comes out of one call, so a series is read
once, window by window, whatever its length.

- raw: every pixel whose two classes differ. It weighs no probabilities (it is the way out when they are
  unusable), so its confidence is 0 or 100 %.
- joint: each pair alone, by both periods' probabilities (joint.py); confidence `1 - sum_c p_a(c) p_b(c)`.
- consistent: every period together, by a hidden Markov model per pixel whose transitions make change rare
  (shared/lulc/consistency.py). Viterbi decodes one class sequence, so a pair changes where the decoded
  classes differ; forward-backward gives each pair's probability of a change given every period. A period
  without data at a pixel is no evidence there (the chain bridges it), but its pairs stay nodata, as in the
  other methods. Uint8 percent cannot say less than half a percent, so class probabilities are floored
  there: a class a map rounded to 0 % is unlikely, not impossible, and a map without probabilities
  (its class counted as certain) can still be outvoted by the other periods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from deep_lulc.shared.lulc.consistency import StickyChain, change_probabilities, viterbi
from deep_lulc.stages.change.joint import Cleaning, JointRule, decide, stable_class

EMISSION_FLOOR = 0.005  # half a percent: the resolution of the uint8-percent probabilities COG


@dataclass(frozen=True)
class Block:
    """One window of every period: class indices (periods, rows, cols), -1 for no data, and the class
    probabilities (periods, classes, rows, cols) where the decider weighs them."""

    indices: np.ndarray
    likelihoods: np.ndarray | None

    @property
    def valid(self) -> np.ndarray:
        """(pairs, rows, cols): both maps of the pair have a class."""
        return (self.indices[:-1] >= 0) & (self.indices[1:] >= 0)

    def probabilities(self) -> np.ndarray:
        if self.likelihoods is None:
            raise RuntimeError("this decider was set up without reading probabilities")
        return self.likelihoods


@dataclass(frozen=True)
class Decided:
    """Each pair's decision on one window, all (pairs, rows, cols); from/to are -1 where either map has no
    data. `keep(pair)` is the class a change the cleaning drops keeps on both ends."""

    changed: np.ndarray
    origin: np.ndarray
    target: np.ndarray
    confidence: np.ndarray  # probability that the pixel changed
    keep: Callable[[int], np.ndarray]


class Decider(Protocol):
    @property
    def cleaning(self) -> Cleaning | None:
        """The cleaning that follows the decision; None: none."""

    @property
    def weighs_probabilities(self) -> bool: ...

    def __call__(self, block: Block) -> Decided: ...


@dataclass(frozen=True)
class RawDecider:
    cleaning: None = None

    @property
    def weighs_probabilities(self) -> bool:
        return False

    def __call__(self, block: Block) -> Decided:
        valid = block.valid
        origin = np.where(valid, block.indices[:-1], -1)
        target = np.where(valid, block.indices[1:], -1)
        changed = valid & (origin != target)
        return Decided(changed, origin, target, changed.astype(np.float32), keep=lambda pair: origin[pair])


@dataclass(frozen=True)
class JointDecider:
    rule: JointRule

    @property
    def cleaning(self) -> Cleaning | None:
        return self.rule if self.rule.active else None

    @property
    def weighs_probabilities(self) -> bool:
        return True

    def __call__(self, block: Block) -> Decided:
        indices, likelihoods = block.indices, block.probabilities()
        decided = [
            decide(indices[t], indices[t + 1], likelihoods[t], likelihoods[t + 1], self.rule)
            for t in range(len(indices) - 1)
        ]
        same = (likelihoods[:-1] * likelihoods[1:]).sum(axis=1)

        def keep(pair: int) -> np.ndarray:
            return stable_class(likelihoods[pair], likelihoods[pair + 1], indices[pair])

        return Decided(
            changed=np.stack([d[0] for d in decided]),
            origin=np.stack([d[1] for d in decided]),
            target=np.stack([d[2] for d in decided]),
            confidence=1 - same,
            keep=keep,
        )


@dataclass(frozen=True)
class ConsistentDecider:
    chain: StickyChain
    rule: Cleaning

    @property
    def cleaning(self) -> Cleaning | None:
        return self.rule if self.rule.active else None

    @property
    def weighs_probabilities(self) -> bool:
        return True

    def __call__(self, block: Block) -> Decided:
        observed = (block.indices >= 0)[:, None]
        emissions = np.where(observed, np.maximum(block.probabilities(), EMISSION_FLOOR), 1).astype(np.float32)
        path = viterbi(emissions, self.chain)
        valid = block.valid
        origin = np.where(valid, path[:-1], -1)
        target = np.where(valid, path[1:], -1)
        return Decided(
            changed=valid & (origin != target),
            origin=origin,
            target=target,
            confidence=change_probabilities(emissions, self.chain),
            keep=lambda pair: path[pair],
        )

    def record(self, *, unit_ha: float, periods: list[str], probabilities: dict[str, bool]) -> dict[str, Any]:
        """What a change item of the series says about how it was decided."""
        return {
            "method": "consistent",
            "change_rate": self.chain.change_rate,
            "periods": periods,
            "probabilities": probabilities,
            "probability_floor": EMISSION_FLOOR,
            "opening_radius": self.rule.opening_radius,
            "min_mapping_unit_ha": unit_ha,
            "min_mapping_unit_px": self.rule.unit_pixels,
        }
