"""The figures a run writes: loss and accuracy per epoch, and one test sample's spikes and readout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_curves", "plot_raster"]


def plot_curves(history: list[dict], path: Path) -> None:
    """``curves.png``: train and test loss and accuracy per epoch."""
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for split in ("train", "test"):
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], marker="o", label=split)
        ax_acc.plot(epochs, [100 * r[f"{split}_acc"] for r in history], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


def plot_raster(x: np.ndarray, spikes: np.ndarray, logits: np.ndarray, label: int, path: Path) -> None:
    """``raster.png``: input ``(T, m)`` (spikes, or an image of graded currents), hidden spikes ``(T, n)`` and the
    readout ``(T, k)`` of one sample."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.5), layout="constrained")
    ax_in, ax_hid, ax_out = fig.subplots(1, 3)
    for ax, s, title in ((ax_in, x, "input spikes"), (ax_hid, spikes, "hidden spikes")):
        if np.isin(s, (0.0, 1.0)).all():
            t, i = np.nonzero(s)
            ax.scatter(t, i, s=2, c="k", marker="|")
        else:  # graded input (currents): an image
            ax.imshow(s.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest")
            title = title.replace("spikes", "currents")
        ax.set(xlabel="time step", ylabel="neuron", title=title, xlim=(-0.5, s.shape[0] - 0.5),
               ylim=(-0.5, s.shape[1] - 0.5))
    for k in range(logits.shape[1]):
        ax_out.plot(logits[:, k], lw=2.5 if k == label else 1, label=str(k) if k == label else None)
    pred = int(np.argmax(np.mean(logits - _logsumexp(logits), axis=0)))
    ax_out.set(xlabel="time step", ylabel="readout potential", title=f"readout (label {label}, predicted {pred})")
    ax_out.legend(title="label", fontsize="small")
    fig.savefig(path, dpi=100)


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))
