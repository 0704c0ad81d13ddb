"""Pictures for the model item: a row-normalised confusion matrix and the loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def confusion_png(metrics: dict[str, Any], path: Path) -> Path:
    counts = np.asarray(metrics["confusion_matrix"]["counts"], dtype=float)
    names = list(metrics["per_class"])
    with np.errstate(invalid="ignore"):
        rates = counts / counts.sum(axis=1, keepdims=True)
    figure, axes = plt.subplots(figsize=(7, 6), dpi=100)
    image = axes.imshow(np.nan_to_num(rates), cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            if counts[i, j]:
                axes.text(
                    j,
                    i,
                    f"{rates[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    miou = metrics.get("miou")
    axes.set_title(
        f"Validation confusion (row-normalised), mIoU {miou:.3f}" if miou is not None else "Validation confusion"
    )
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def loss_png(history: list[dict[str, float]], path: Path) -> Path:
    epochs = [row["epoch"] for row in history]
    figure, left = plt.subplots(figsize=(7, 4), dpi=100)
    left.plot(epochs, [row["train_loss"] for row in history], label="train loss")
    left.plot(epochs, [row["valid_loss"] for row in history], label="validation loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    right = left.twinx()
    right.plot(epochs, [row["miou"] for row in history], color="tab:green", label="validation mIoU")
    right.set_ylabel("mIoU")
    right.set_ylim(0, 1)
    lines = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.legend(lines, [str(line.get_label()) for line in lines], loc="upper right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
