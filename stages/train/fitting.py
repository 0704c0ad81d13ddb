"""The fastai training loop: one-cycle, freeze/unfreeze when pretrained, best checkpoint by validation
mIoU, early stopping, resumable checkpoints (safetensors + JSON, never pickles).

Each epoch is logged once, by the checkpoint callback. fastai's own metric table is switched off (it repeats
those numbers), and its progress bars are drawn only on a terminal: in a pod's log they are carriage-return
frames that pile up into one long line per epoch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastai.callback.fp16
import fastai.callback.progress
import fastai.callback.schedule  # noqa: F401  (fit_one_cycle, lr_find)
import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.callback.tracker import EarlyStoppingCallback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.imports import noop  # fastai compares against its own noop, not fastcore's
from fastai.learner import Learner, Metric
from fastai.optimizer import Adam
from torch import nn

from deep_lulc.shared.networks import load_weights, save_weights
from deep_lulc.shared.progress import interactive

log = logging.getLogger(__name__)
LAST, BEST, STATE = "last.safetensors", "best.safetensors", "state.json"


class MeanIoU(Metric):  # type: ignore[misc]
    """Validation mIoU over the classes present in the truth, labels 0 ignored."""

    def __init__(self, n_out: int) -> None:
        self.n_out = n_out
        self.matrix = torch.zeros(n_out, n_out, dtype=torch.int64)

    def reset(self) -> None:
        self.matrix = torch.zeros(self.n_out, self.n_out, dtype=torch.int64)

    def accumulate(self, learn: Learner) -> None:
        logits = learn.pred.detach().float()
        logits[:, 0] = -torch.inf  # NoData is never an answer
        predicted = logits.argmax(dim=1).flatten().cpu()
        truth = learn.y.flatten().cpu()
        keep = truth != 0
        index = truth[keep] * self.n_out + predicted[keep]
        self.matrix += torch.bincount(index, minlength=self.n_out * self.n_out).reshape(self.n_out, self.n_out)

    @property
    def value(self) -> float:
        matrix = self.matrix.double()
        tp = matrix.diag()
        support = matrix.sum(1)
        union = support + matrix.sum(0) - tp
        present = support > 0
        return float((tp[present] / union[present]).mean()) if present.any() else 0.0

    @property
    def name(self) -> str:
        return "miou"


@dataclass
class TrainingState:
    """What a resumed run needs: where the schedule was and what the history says."""

    epochs_done: int = 0
    best_miou: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, float]] = field(default_factory=list)

    @staticmethod
    def load(folder: Path) -> TrainingState:
        path = folder / STATE
        return TrainingState(**json.loads(path.read_text())) if path.is_file() else TrainingState()

    def save(self, folder: Path) -> None:
        scratch = folder / f".{STATE}.tmp"
        scratch.write_text(json.dumps(self.__dict__, indent=2))
        scratch.replace(folder / STATE)


class CheckpointCallback(Callback):  # type: ignore[misc]
    """After each epoch: history row, last weights, best weights on a new best mIoU, then state.json."""

    order = 70  # after the recorder has the epoch's values

    def __init__(self, folder: Path, state: TrainingState, epoch_offset: int, *, epochs: int) -> None:
        self.folder, self.state, self.epoch_offset, self.epochs = folder, state, epoch_offset, epochs
        self.started = 0.0

    def before_epoch(self) -> None:
        self.started = time.perf_counter()

    def after_epoch(self) -> None:
        epoch = self.epoch_offset + self.epoch + 1
        if epoch <= self.state.epochs_done:  # an epoch fastai skipped on resume (start_epoch)
            return
        names = list(self.learn.recorder.metric_names[1:-1])  # drop 'epoch' and 'time'
        values = dict(zip(names, self.learn.recorder.log[1:-1], strict=False))
        miou = float(values.get("miou", float("nan")))
        row = {
            "epoch": epoch,
            "train_loss": float(values.get("train_loss", float("nan"))),
            "valid_loss": float(values.get("valid_loss", float("nan"))),
            "miou": miou,
            "seconds": round(time.perf_counter() - self.started, 3),
        }
        self.state.history.append(row)
        save_weights(self.learn.model, self.folder / LAST)
        if np.isfinite(miou) and miou > self.state.best_miou:
            self.state.best_miou, self.state.best_epoch = miou, epoch
            save_weights(self.learn.model, self.folder / BEST)
        self.state.epochs_done = epoch
        self.state.save(self.folder)
        log.info("epoch %d/%d: train loss %.4f, valid loss %.4f, mIoU %.4f (%.1f s)%s", epoch, self.epochs,
                 row["train_loss"], row["valid_loss"], miou, row["seconds"],
                 ", best so far" if self.state.best_epoch == epoch else "")  # fmt: skip


class ResumableEarlyStopping(EarlyStoppingCallback):  # type: ignore[misc]
    """Early stopping on validation mIoU that ignores the epochs fastai skips when a run resumes."""

    def __init__(self, patience: int, skip: int = 0) -> None:
        super().__init__(monitor="miou", comp=np.greater, min_delta=1e-4, patience=patience)
        self.skip = skip

    def after_epoch(self) -> None:
        if self.epoch >= self.skip:
            super().after_epoch()


@contextlib.contextmanager
def progress_to_stderr() -> Iterator[None]:
    """fastai draws its progress bars on stdout; the stage contract keeps stdout for the result line."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


class BalancedLoader(DataLoader):  # type: ignore[misc]
    """Draws each epoch's chips with replacement by weight, from its own seeded generator (no global RNG)."""

    def __init__(self, dataset: Any, *, weights: np.ndarray, seed: int, **kwargs: Any) -> None:
        self.chip_weights = weights
        self.generator = np.random.default_rng(seed)
        super().__init__(dataset, **kwargs)

    def get_idxs(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        drawn = np.asarray(self.generator.choice(self.n, size=self.n, p=self.chip_weights))
        return [int(i) for i in drawn]


def seed_everything(seed: int) -> None:
    """Same chips + same seed + same machine -> the same weights: every RNG seeded, deterministic kernels."""
    import os
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32 - 1))
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass(frozen=True)
class FitPlan:
    epochs: int
    lr: float | None  # None: find it
    pretrained: bool
    patience: int
    device: torch.device


def fit(
    model: nn.Module,
    dls: DataLoaders,
    loss: nn.Module,
    *,
    n_out: int,
    plan: FitPlan,
    checkpoints: Path,
    resume: bool,
) -> tuple[TrainingState, float]:
    """Train (or continue training) and return the state and the learning rate used."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    state = TrainingState.load(checkpoints) if resume else TrainingState()
    if resume and state.epochs_done:
        load_weights(model, checkpoints / LAST)
        log.info("resuming after epoch %d of %d (best mIoU %.4f)", state.epochs_done, plan.epochs, state.best_miou)
    elif not resume:
        for name in (LAST, BEST, STATE):
            (checkpoints / name).unlink(missing_ok=True)
    if plan.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    learn = Learner(dls, model, loss_func=loss, opt_func=Adam, metrics=[MeanIoU(n_out)], splitter=_encoder_split)
    learn.logger = noop  # fastai's metric table: CheckpointCallback logs each epoch once
    if not interactive():
        learn.remove_cb(ProgressCallback)
    if plan.device.type == "cuda":
        learn = learn.to_fp16()
    lr = plan.lr
    with progress_to_stderr():
        if lr is None:
            suggestion = learn.lr_find(show_plot=False)
            lr = float(suggestion.valley)
            log.info("LR finder suggests %.2e", lr)
        freeze_epochs = 1 if plan.pretrained and plan.epochs > 1 else 0
        if freeze_epochs and state.epochs_done < freeze_epochs:
            learn.freeze()
            learn.fit_one_cycle(freeze_epochs, lr, cbs=[CheckpointCallback(checkpoints, state, 0, epochs=plan.epochs)])
        learn.unfreeze()
        done = state.epochs_done
        remaining = plan.epochs - freeze_epochs
        if done < plan.epochs and remaining > 0:
            start = done - freeze_epochs
            learn.fit_one_cycle(
                remaining,
                slice(lr / 100, lr / 2) if plan.pretrained else lr,
                start_epoch=start,
                cbs=[
                    CheckpointCallback(checkpoints, state, freeze_epochs, epochs=plan.epochs),
                    ResumableEarlyStopping(plan.patience, skip=start),
                ],
            )
    return state, lr


def _encoder_split(model: nn.Module) -> list[Any]:
    """Two parameter groups, encoder and decoder, so `freeze` trains only the decoder."""
    layers = list(model.children())
    return [list(layers[0].parameters()), [p for layer in layers[1:] for p in layer.parameters()]]
