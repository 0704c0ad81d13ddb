"""The fastai training loop: one-cycle, freeze/unfreeze when pretrained, best checkpoint by validation
mIoU, early stopping, resumable checkpoints (safetensors + JSON, never pickles).

A checkpoint holds everything the next epoch depends on: weights, the optimizer's moments and step counts,
every RNG the loop draws from (torch's, Python's, NumPy's, the chip sampler's and the augmenter's), the
smoothed training loss and the early-stopping count (replayed from the history). On the CPU a run killed
after epoch k and resumed therefore ends with the same weights and metrics as one never interrupted.

Each epoch is logged once, by the checkpoint callback. fastai's own metric table is switched off (it repeats
those numbers), and its progress bars are drawn only on a terminal: in a pod's log they are carriage-return
frames that pile up into one long line per epoch.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import time
from collections.abc import Callable, Iterator
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
from safetensors.torch import load_file, save_file
from torch import nn

from deep_lulc.shared.models.networks import load_weights, save_weights
from deep_lulc.shared.stage.progress import interactive
from deep_lulc.stages.train.checkpoints import (
    Checkpoints,
    TrainingState,
    file_ref,
    resume_name,
    weights_name,
    write_atomically,
)

log = logging.getLogger(__name__)


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


class CheckpointCallback(Callback):  # type: ignore[misc]
    """After each epoch: history row, weights, resume state, then the pointer (and its mirror)."""

    order = 70  # after the recorder has the epoch's values

    def __init__(self, checkpoints: Checkpoints, state: TrainingState, epoch_offset: int, *, epochs: int) -> None:
        self.checkpoints, self.state, self.epoch_offset, self.epochs = checkpoints, state, epoch_offset, epochs
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
        folder = self.checkpoints.folder
        weights = folder / weights_name(epoch)
        write_atomically(weights, lambda path: save_weights(self.learn.model, path))
        tensors, resume = capture(self.learn)
        write_atomically(folder / resume_name(epoch), lambda path: save_file(tensors, str(path)))
        self.state.history.append(row)
        self.state.files["last"] = file_ref(weights)
        self.state.files["resume"] = file_ref(folder / resume_name(epoch))
        if np.isfinite(miou) and miou > self.state.best_miou:
            self.state.best_miou, self.state.best_epoch = miou, epoch
            self.state.files["best"] = self.state.files["last"]
        self.state.epochs_done, self.state.resume = epoch, resume
        self.checkpoints.commit(self.state)
        log.info(
            "epoch %d/%d: train loss %.4f, valid loss %.4f, mIoU %.4f (%.1f s)%s",
            epoch,
            self.epochs,
            row["train_loss"],
            row["valid_loss"],
            miou,
            row["seconds"],
            ", best so far" if self.state.best_epoch == epoch else "",
        )


def _generators(learn: Learner) -> dict[str, np.random.Generator]:
    """The NumPy generators of the training loader: its chip sampler and its dataset's augmenter."""
    found = {}
    for name, owner in (("sampler", learn.dls.train), ("augment", getattr(learn.dls.train, "dataset", None))):
        generator = getattr(owner, "generator" if name == "sampler" else "rng", None)
        if isinstance(generator, np.random.Generator):
            found[name] = generator
    return found


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def capture(learn: Learner) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state the next epoch depends on beyond the weights: tensors for safetensors, the rest as JSON."""
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = cuda_state
    optimizer = []
    for index, (parameter, *_) in enumerate(learn.opt.all_params()):
        plain = {}
        for key, value in learn.opt.state[parameter].items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[key] = _plain(value)
        optimizer.append(plain)
    version, internal, gauss = random.getstate()
    legacy = tuple(np.random.get_state(legacy=True))
    smooth = learn.recorder.smooth_loss
    scaler = getattr(learn, "scaler", None)
    resume = {
        "optimizer": optimizer,
        "python_random": [version, list(internal), gauss],
        "numpy_random": [legacy[0], np.asarray(legacy[1]).tolist(), *(_plain(v) for v in legacy[2:])],
        "generators": {name: g.bit_generator.state for name, g in _generators(learn).items()},
        "smooth_loss": {"val": float(smooth.val), "count": int(smooth.count)},
        "scaler": scaler.state_dict() if scaler is not None and hasattr(scaler, "state_dict") else None,
    }
    return tensors, resume


class RestoreCallback(Callback):  # type: ignore[misc]
    """At the first epoch a resumed run trains: the optimizer and RNG state of the checkpoint; the loss
    smoothing and the mixed-precision scale too when the checkpoint fell inside this fit (fastai resets those
    at each fit, so a resume at a fit's start must not bring them back)."""

    def __init__(self, resume: dict[str, Any], tensors_file: Path, *, start: int) -> None:
        self.resume, self.tensors_file, self.start, self.done = resume, tensors_file, start, False

    def before_train(self) -> None:
        if self.done or self.epoch != self.start:
            return
        self.done = True
        tensors = load_file(str(self.tensors_file))
        for index, (parameter, *_) in enumerate(self.learn.opt.all_params()):
            restored: dict[str, Any] = dict(self.resume["optimizer"][index])
            prefix = f"opt.{index}."
            for key, value in tensors.items():
                if key.startswith(prefix):
                    restored[key[len(prefix) :]] = value.to(parameter.device)
            self.learn.opt.state[parameter] = restored
        torch.set_rng_state(tensors["rng.torch"])
        cuda = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count()) if f"rng.cuda.{i}" in tensors]
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda)
        version, internal, gauss = self.resume["python_random"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, *rest = self.resume["numpy_random"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        generators = _generators(self.learn)
        for name, state in self.resume["generators"].items():
            generators[name].bit_generator.state = state
        if self.start > 0:
            smooth = self.learn.recorder.smooth_loss
            smooth.val = torch.tensor(self.resume["smooth_loss"]["val"], dtype=torch.float32)
            smooth.count = self.resume["smooth_loss"]["count"]
            scaler = getattr(self.learn, "scaler", None)
            if scaler is not None and self.resume.get("scaler"):
                scaler.load_state_dict(self.resume["scaler"])


class ResumableEarlyStopping(EarlyStoppingCallback):  # type: ignore[misc]
    """Early stopping on validation mIoU that ignores the epochs fastai skips when a run resumes."""

    best: float
    wait: int

    def __init__(self, patience: int, skip: int = 0, previous: list[float] | None = None) -> None:
        super().__init__(monitor="miou", comp=np.greater, min_delta=1e-4, patience=patience)
        self.skip, self.previous = skip, previous or []

    def before_fit(self) -> None:
        """Replay the skipped epochs' mIoU, so the count of epochs without gain is the uninterrupted run's."""
        super().before_fit()
        for miou in self.previous:
            if self.comp(miou - self.min_delta, self.best):
                self.best, self.wait = miou, 0
            else:
                self.wait += 1

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


@dataclass
class Fitted:
    """A trained model behind the network interface, and how to store it."""

    predictor: nn.Module
    save: Callable[[Path], str]  # writes the weights into a folder, returns the file name
    media_type: str
    title: str
    parameters: int
    hyperparameters: dict[str, Any]
    lr: float | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    output_values: list[int] | None = None
    resumed_after_epoch: int | None = None  # the checkpoint this run continued; None: trained from the start


def fit(
    model: nn.Module,
    dls: DataLoaders,
    loss: nn.Module,
    *,
    n_out: int,
    plan: FitPlan,
    checkpoints: Checkpoints,
    state: TrainingState | None,
    fingerprint: str,
) -> tuple[TrainingState, float]:
    """Train, or continue the checkpointed `state`, and return the final state and the learning rate used."""
    checkpoints.folder.mkdir(parents=True, exist_ok=True)
    if state is None:
        state = TrainingState(fingerprint=fingerprint)
    else:
        load_weights(model, checkpoints.folder / state.weights("last"))
        log.info(
            "resuming after epoch %d of %d (best mIoU %.4f) from %s%s",
            state.epochs_done,
            plan.epochs,
            state.best_miou,
            checkpoints.where,
            "" if state.exact else ", weights only",
        )
        state.fingerprint = fingerprint
    if state.finished and state.lr is not None:
        log.info("training had finished (%d epochs): reusing its best weights", state.epochs_done)
        return state, state.lr
    if plan.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    learn = Learner(dls, model, loss_func=loss, opt_func=Adam, metrics=[MeanIoU(n_out)], splitter=_encoder_split)
    learn.logger = noop  # fastai's metric table: CheckpointCallback logs each epoch once
    if not interactive():
        learn.remove_cb(ProgressCallback)
    if plan.device.type == "cuda":
        learn = learn.to_fp16()
    lr = plan.lr if plan.lr is not None else state.lr
    with progress_to_stderr():
        if lr is None:
            suggestion = learn.lr_find(show_plot=False)
            lr = float(suggestion.valley)
            log.info("LR finder suggests %.2e", lr)
        state.lr = lr
        freeze_epochs = 1 if plan.pretrained and plan.epochs > 1 else 0
        if freeze_epochs and state.epochs_done < freeze_epochs:
            learn.freeze()
            learn.fit_one_cycle(freeze_epochs, lr, cbs=[CheckpointCallback(checkpoints, state, 0, epochs=plan.epochs)])
        learn.unfreeze()
        done = state.epochs_done
        remaining = plan.epochs - freeze_epochs
        if done < plan.epochs and remaining > 0:
            start = done - freeze_epochs
            callbacks = [
                CheckpointCallback(checkpoints, state, freeze_epochs, epochs=plan.epochs),
                ResumableEarlyStopping(
                    plan.patience,
                    skip=start,
                    previous=[row["miou"] for row in state.history if row["epoch"] > freeze_epochs],
                ),
            ]
            if done and state.exact:
                callbacks.append(
                    RestoreCallback(state.resume, checkpoints.folder / state.files["resume"]["name"], start=start)
                )
            learn.fit_one_cycle(
                remaining, slice(lr / 100, lr / 2) if plan.pretrained else lr, start_epoch=start, cbs=callbacks
            )
    state.finished = True
    checkpoints.commit(state)
    return state, lr


def _encoder_split(model: nn.Module) -> list[Any]:
    """Two parameter groups, encoder and decoder, so `freeze` trains only the decoder."""
    layers = list(model.children())
    return [list(layers[0].parameters()), [p for layer in layers[1:] for p in layer.parameters()]]
