"""Figures of where each AU looks, and of AU probabilities over a video.

`patch_attention` turns the decoder's cross-attention (the `CA_tx` of the last layer, paper eq. 6) into
one map per AU over the ViT's patch grid: averaged over heads, ViT CLS token dropped. `attention_figure`
overlays those maps on the face crop, one panel per AU titled with its probability; `timeline_figure`
draws each AU's probability over time, one row per AU. Figures are plain matplotlib `Figure`s drawn with
the Agg canvas (no pyplot, no display needed); `atomic_io.save_figure` writes them atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PANEL_COLUMNS = 7
PANEL_INCHES = 1.6


def patch_attention(cross_attentions: Sequence[torch.Tensor], grid_size: int) -> np.ndarray:
    """Last decoder layer's cross-attention of each label token over the image patches.

    Args:
        cross_attentions: one tensor per decoder layer, `(batch, heads, labels, 1 + grid_size**2)`; token 0
            is the ViT CLS token, tokens 1.. the patches in row-major order.
        grid_size: patches per side (`image_size // patch_size`).

    Returns:
        `(batch, labels, grid_size, grid_size)` attention weights, mean over heads (not renormalised, so a
        map's sum is the share of attention its token gives the patches rather than the CLS token).
    """
    last = cross_attentions[-1].float().mean(dim=1)  # (batch, labels, tokens)
    patches = last[:, :, 1:]  # (batch, labels, grid_size**2)
    if patches.shape[-1] != grid_size * grid_size:
        raise ValueError(
            f"cross-attention covers {patches.shape[-1]} patch tokens after the CLS token; a {grid_size}x"
            f"{grid_size} patch grid needs {grid_size * grid_size}"
        )
    return patches.reshape(*patches.shape[:2], grid_size, grid_size).cpu().numpy()


def overlay_map(attention: np.ndarray, size: int) -> np.ndarray:
    """An attention map `(g, g)` upsampled bilinearly to `(size, size)` and scaled to [0, 1] for display."""
    upsampled = cv2.resize(attention.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    span = float(upsampled.max() - upsampled.min())
    return (upsampled - upsampled.min()) / span if span > 0 else np.zeros_like(upsampled)


def panel_grid(num_labels: int) -> tuple[int, int]:
    """Rows and columns of one face's panels: the face, then one per label, at most `PANEL_COLUMNS` wide."""
    columns = min(PANEL_COLUMNS, num_labels + 1)
    return math.ceil((num_labels + 1) / columns), columns


def attention_figure(
    crops: Sequence[np.ndarray],
    maps: np.ndarray,
    probabilities: np.ndarray,
    label_names: Sequence[str],
    thresholds: Sequence[float],
    title: str = "",
) -> Figure:
    """One block of panels per face: the face crop, then each AU's attention overlaid on it.

    Args:
        crops: face crops `(S, S, 3)` uint8, one per face.
        maps: `(faces, labels, g, g)` from `patch_attention`.
        probabilities: `(faces, labels)`; panel titles show them, in red where the AU is decided present.
        label_names, thresholds: per label, in output order.
        title: what the figure shows (input name and frame), put before the caption.

    Returns:
        A figure with exactly `faces * (1 + labels)` axes.
    """
    rows, columns = panel_grid(len(label_names))
    figure = Figure(figsize=(columns * PANEL_INCHES, rows * len(crops) * PANEL_INCHES + 0.5))
    FigureCanvasAgg(figure)
    for face, crop in enumerate(crops):
        first = face * rows * columns + 1
        axis = figure.add_subplot(rows * len(crops), columns, first)
        axis.imshow(crop)
        axis.set_title(f"face {face}", fontsize=8)
        axis.set_axis_off()
        for label, name in enumerate(label_names):
            axis = figure.add_subplot(rows * len(crops), columns, first + 1 + label)
            probability = float(probabilities[face, label])
            axis.imshow(crop)
            axis.imshow(overlay_map(maps[face, label], crop.shape[0]), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            axis.set_title(
                f"{name} {probability:.2f}", fontsize=8, color="red" if probability >= thresholds[label] else "black"
            )
            axis.set_axis_off()
    caption = "attention of each AU's token over the face (scaled per panel); red: AU present"
    figure.suptitle(f"{title}: {caption}" if title else caption, fontsize=9)
    figure.tight_layout()
    return figure


def face_tracks(frames: np.ndarray, face_ids: np.ndarray, probabilities: np.ndarray) -> dict[int, np.ndarray]:
    """Per face id, its probabilities on every frame of the video `(num_frames, labels)`, NaN on frames
    where that face is absent, so plotted lines break where the face was not found."""
    frame_numbers, frame_rows = np.unique(frames, return_inverse=True)
    tracks = {}
    for face in np.unique(face_ids[face_ids >= 0]):
        track = np.full((len(frame_numbers), probabilities.shape[1]), np.nan)
        rows = face_ids == face
        track[frame_rows[rows]] = probabilities[rows]
        tracks[int(face)] = track
    return tracks


def timeline_figure(
    frames: np.ndarray,
    timestamps: np.ndarray,
    face_ids: np.ndarray,
    probabilities: np.ndarray,
    label_names: Sequence[str],
    thresholds: Sequence[float],
    title: str = "",
) -> Figure:
    """AU probabilities over time, one row per AU, one line per face id, the decision threshold dashed.

    Args:
        frames: `(rows,)` frame number of each CSV row (a frame has one row per face).
        timestamps: `(rows,)` seconds of each row.
        face_ids: `(rows,)` face id of each row, -1 where no face was found (gaps in the lines).
        probabilities: `(rows, labels)` probabilities (NaN where no face was found).

    Returns:
        A figure with exactly one axis per label.
    """
    times = np.unique(np.stack([frames, timestamps], axis=1), axis=0)[:, 1]  # (num_frames,) in frame order
    tracks = face_tracks(frames, face_ids, probabilities)
    figure = Figure(figsize=(9, 0.8 * len(label_names) + 0.8))
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(label_names), 1, sharex=True, squeeze=False)[:, 0]
    for label, (axis, name) in enumerate(zip(axes, label_names)):
        for face, track in tracks.items():
            axis.plot(times, track[:, label], linewidth=0.9, label=f"face {face}")
        axis.axhline(thresholds[label], color="gray", linestyle="--", linewidth=0.7)
        axis.set_ylim(-0.05, 1.05)
        axis.set_yticks([0, 1])
        axis.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="upper right", fontsize=7, ncol=4)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure
