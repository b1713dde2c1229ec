"""A small learned occluder segmenter for de-occlusion (optional cue next to the photometric test).

:func:`recon3d.edit.detect_occlusion` finds occluders as pixels the fitted 3DMM cannot explain.
That misses occluders coloured like skin (hands) and is fooled when a large occluder drags the
fit's albedo and light towards its own colour (face masks). :class:`OccluderNet` looks at the
photo itself: a four-level U-Net (about 70 M multiply-adds at 96², a few ms per face on a CPU)
that maps a face crop to a per-pixel occluder probability.

It is trained by ``python -m pipelines.train_occluder`` (:mod:`recon3d.train.recipes.occluder`) on
300-W photos with random occluders pasted in (:mod:`recon3d.data.occluders`; shapes: ellipse clusters, polygons, strokes, rectangles, smooth blobs, finger-like
capsule groups; textures: patches of other photos, flat or noisy colours, other faces' skin,
darkened patches; soft or hard edges). Real occluders already in those photos are not labelled,
so the network learns "something pasted over the face"; the photometric test stays in the
decision (see ``detect_occlusion(..., net=...)``).

Weights are safetensors (fp16) with the configuration in the metadata, read and cached by
:mod:`recon3d.nn.registry` (loading never executes code). The crop (:mod:`recon3d.ops.crop`) is a square of :data:`CROP_SCALE` times the larger side of the 68-landmark box,
turned so that the eye line is horizontal when the face is tilted by more than
:data:`DEROLL_MIN_DEG` (the training faces are mostly upright; without this a face tilted by 45
degrees was flagged almost entirely) and resampled to :data:`CROP_SIZE`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShapeError
from ..ops.crop import crop_rotated, roll_angle, square_box, uncrop_rotated
from .preprocess import standardise
from .registry import NetworkSpec, load_network, save_network

__all__ = ["OccluderNet", "OCCLUDER_NET", "OCCLUDER_ASSET", "OCC_FORMAT", "CROP_SIZE", "CROP_SCALE", "DEROLL_MIN_DEG",
           "MEAN", "STD", "save_occluder_net", "load_occluder_net", "occluder_input", "occluder_probability",
           "crop_box", "crop", "uncrop", "roll_angle"]

#: file name of the shipped weights in assets/
OCCLUDER_ASSET = "recon3d_occluder_v1.safetensors"
#: format tag in the safetensors metadata
OCC_FORMAT = "recon3d-occluder-net-v1"
#: network input side
CROP_SIZE = 96
#: crop side / larger side of the landmark box
CROP_SCALE = 1.4
#: input normalisation (all channels, RGB in [0, 1])
MEAN, STD = 0.5, 0.25
#: faces tilted more than this (degrees, eye line) are turned upright before the network sees them;
#: smaller tilts are left alone (de-rolling every face cost 0.013 mask IoU on bench/occlusion.py)
DEROLL_MIN_DEG = 15.0


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class OccluderNet(nn.Module):
    """U-Net: input ``(B, 3, S, S)`` standardised RGB, output ``(B, 1, S, S)`` occluder logits."""

    def __init__(self, width: tuple[int, ...] = (16, 32, 64, 96)):
        super().__init__()
        if len(width) != 4:
            raise ValueError(f"OccluderNet(): width must have 4 entries, got {width}")
        self.config = {"width": list(width)}
        w = width
        self.down = nn.ModuleList()
        cin = 3
        for c in w:  # each level halves the resolution
            self.down.append(nn.Sequential(_conv(cin, c, 2), _conv(c, c)))
            cin = c
        self.up = nn.ModuleList(_conv(w[i + 1] + w[i], w[i]) for i in reversed(range(len(w) - 1)))
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
        for i, u in enumerate(self.up):
            s = skips[-2 - i]
            x = u(torch.cat([F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False), s], 1))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)


def occluder_input(rgb01: torch.Tensor) -> torch.Tensor:
    """``(B, 3, S, S)`` RGB in [0, 1] -> network input."""
    return standardise(rgb01, MEAN, STD)


#: how the occluder network's weights are stored (see :mod:`recon3d.nn.registry`)
OCCLUDER_NET = NetworkSpec(name="occluder", cls=OccluderNet, format=OCC_FORMAT, what="occluder network",
                           asset=OCCLUDER_ASSET)


def save_occluder_net(net: OccluderNet, path: str | Path, *, meta: dict | None = None) -> None:
    """Write ``net`` as fp16 safetensors with its configuration in the metadata."""
    save_network(net, path, OCCLUDER_NET, meta=meta)


def load_occluder_net(path: str | Path | None = None) -> tuple[OccluderNet, dict]:
    """Load a :func:`save_occluder_net` file (default: the shipped asset) as a fresh, uncached
    network. Returns ``(net, meta)``.

    Raises:
        AssetError: missing file, not safetensors, or not an occluder-net file.
    """
    return load_network(OCCLUDER_NET, path, cached=False)


def crop_box(lmk: np.ndarray, scale: float = CROP_SCALE) -> np.ndarray:
    """``(x0, y0, side)`` float square box around ``(68, 2)`` landmarks (:func:`recon3d.ops.crop.square_box`).

    >>> crop_box(np.array([[0.0, 0.0], [10.0, 20.0]]), 1.0).tolist()
    [-5.0, 0.0, 20.0]
    """
    return square_box(lmk, scale)


def crop(image: np.ndarray | torch.Tensor, box: np.ndarray, size: int = CROP_SIZE, angle: float = 0.0) -> torch.Tensor:
    """The network's ``(3, size, size)`` crop (:func:`recon3d.ops.crop.crop_rotated`)."""
    return crop_rotated(image, box, size, angle)


#: map a crop map back to the image (:func:`recon3d.ops.crop.uncrop_rotated`)
uncrop = uncrop_rotated


def occluder_probability(image: np.ndarray | torch.Tensor, lmk: np.ndarray | torch.Tensor, *,
                         net: OccluderNet | None = None, flip_test: bool = True) -> np.ndarray:
    """Per-pixel occluder probability ``(H, W)`` float32 for the face at ``lmk`` (68 landmarks).

    Args:
        image: ``(H, W, 3)`` RGB in [0, 1].
        lmk: ``(68, 2)`` landmarks in pixels (detected or fitted).
        net: a loaded :class:`OccluderNet` (default: the shipped weights, loaded once and cached
            by :mod:`recon3d.nn.registry`).
        flip_test: average with the prediction on the mirrored crop.
    """
    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    lm = lmk.detach().cpu().numpy() if isinstance(lmk, torch.Tensor) else np.asarray(lmk)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ShapeError(f"occluder_probability(): image must be (H, W, 3), got {img.shape}")
    if lm.shape != (68, 2):
        raise ShapeError(f"occluder_probability(): lmk must be (68, 2), got {lm.shape}")
    if net is None:
        net = load_network(OCCLUDER_NET)[0]
    box = crop_box(lm)
    angle = roll_angle(lm)  # the network saw 300-W's mostly upright faces: de-roll strong tilts only
    if abs(math.degrees(angle)) < DEROLL_MIN_DEG:
        angle = 0.0
    x = crop(img, box, angle=angle)[None]
    with torch.no_grad():
        xs = torch.cat([x, x.flip(-1)]) if flip_test else x
        p = torch.sigmoid(net(occluder_input(xs)))[:, 0]
        p = 0.5 * (p[0] + p[1].flip(-1)) if flip_test else p[0]
    return uncrop(p, box, img.shape[0], img.shape[1], angle).astype(np.float32)
