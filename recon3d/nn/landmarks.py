"""recon3d's own landmark regressor: a small CNN from a face crop to 68 landmarks (with depth) and
the head pose, trained on large-pose views synthesized by :mod:`recon3d.data.poses`.

Architecture (pure PyTorch, about 25 M multiply-adds at 112², a few ms per face on a CPU): a
stride-2 stem and four stages of two 3x3 conv-BN-ReLU blocks with residual connections
(16-24-48-96-160 channels, 56² down to 4²), then two fully connected layers on the flattened
4x4 map (spatial layout kept, unlike global pooling) that output, per landmark, x and y in the
crop (normalised to [-1, 1]) and a relative depth, plus (yaw, pitch, roll) / 90°.

Landmarks follow AFLW2000-3D's 3-D convention: jaw points stay on the 3-D jaw line when it is
hidden (the fitter must use the static landmark embedding with them, not the dynamic contour).

Weights are a safetensors file with the configuration in its metadata, read and cached by
:mod:`recon3d.nn.registry` (loading never executes code). :class:`LandmarkRegressor` does the
cropping (:mod:`recon3d.ops.crop`): a square of :data:`~recon3d.ops.crop.LANDMARK_CROP_SCALE` times
the larger side of a landmark box is resampled (antialiased) to 128², its central 112² is the network
input; a second pass re-crops around the first pass's landmarks. By default the mirrored crop is run too and the two predictions are
averaged (flip test, 0.2 points of NME on AFLW2000-3D dev for twice the network time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..conventions import IBUG68_MIRROR
from ..errors import ShapeError
from ..ops.crop import crop_box_from_landmarks, crop_square_resized
from .preprocess import standardise
from .registry import NetworkSpec, load_network, save_network

__all__ = ["LandmarkNet", "LandmarkRegressor", "RegressorOutput", "load_regressor", "load_regressor_net", "save_regressor",
           "normalise", "decode", "encode_targets", "LANDMARK_NET", "STORED_SIZE", "INPUT_SIZE", "FORMAT",
           "REGRESSOR_ASSET", "MEAN", "STD"]

#: side of the stored training crops and of the first resampling at inference
STORED_SIZE = 128
#: network input side (the central part of a STORED_SIZE crop)
INPUT_SIZE = 112
#: file name of the shipped weights in assets/
REGRESSOR_ASSET = "recon3d_landmarks_v1.safetensors"
#: format tag written into the safetensors metadata
FORMAT = "recon3d-landmark-regressor-v1"
#: input normalisation (per channel, RGB in [0, 1])
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)), inplace=True)
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.skip is None else self.skip(x)), inplace=True)


class LandmarkNet(nn.Module):
    """Crop ``(B, 3, S, S)`` (normalised) -> ``(B, 68*3 + 3)``: x, y in [-1, 1] of the crop, depth
    (crop half-widths), then yaw, pitch, roll / 90 degrees.

    >>> net = LandmarkNet().eval()
    >>> net(torch.zeros(2, 3, 112, 112)).shape
    torch.Size([2, 207])
    """

    def __init__(self, width: tuple[int, ...] = (16, 24, 48, 96, 160), hidden: int = 256, input_size: int = INPUT_SIZE):
        super().__init__()
        self.config = {"width": list(width), "hidden": hidden, "input_size": input_size}
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, 2, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        blocks = []
        for i in range(1, len(w)):
            blocks += [_Block(w[i - 1], w[i], 2), _Block(w[i], w[i], 1)]
        self.body = nn.Sequential(*blocks)
        side = input_size
        for _ in range(len(w)):
            side = (side + 1) // 2
        self.fc1 = nn.Linear(w[-1] * side * side, hidden)
        self.fc2 = nn.Linear(hidden, 68 * 3 + 3)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(self.stem(x))
        y = F.relu(self.fc1(y.flatten(1)), inplace=True)
        return self.fc2(y)


#: how the landmark regressor's weights are stored (see :mod:`recon3d.nn.registry`)
LANDMARK_NET = NetworkSpec(name="landmarks", cls=LandmarkNet, format=FORMAT, what="landmark regressor",
                           asset=REGRESSOR_ASSET)


def normalise(images_u8: torch.Tensor) -> torch.Tensor:
    """``(B, S, S, 3)`` uint8 -> ``(B, 3, S, S)`` float normalised network input."""
    return standardise(images_u8.permute(0, 3, 1, 2).float() / 255.0, MEAN, STD)


def decode(out: torch.Tensor, size: int = INPUT_SIZE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Network output -> landmarks ``(B, 68, 2)`` in input-crop pixels, depth ``(B, 68)`` in crop
    pixels and pose ``(B, 3)`` degrees."""
    B = out.shape[0]
    lm = out[:, : 68 * 3].view(B, 68, 3)
    half = size / 2.0
    xy = lm[..., :2] * half + (half - 0.5)
    z = lm[..., 2] * half
    return xy, z, out[:, 68 * 3:] * 90.0


def encode_targets(lmk: torch.Tensor, lmk_z: torch.Tensor, pose_deg: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Inverse of :func:`decode` (labels -> regression targets)."""
    half = size / 2.0
    xy = (lmk - (half - 0.5)) / half
    z = lmk_z / half
    return torch.cat([torch.cat([xy, z[..., None]], -1).flatten(1), pose_deg / 90.0], 1)


def save_regressor(net: LandmarkNet, path: str | Path, *, meta: dict | None = None, half: bool = True) -> None:
    """Write ``net`` as safetensors (fp16 by default) with its configuration in the metadata."""
    save_network(net, path, LANDMARK_NET, meta=meta, half=half)


def load_regressor_net(path: str | Path, device: torch.device | str | None = None) -> tuple[LandmarkNet, dict]:
    """Load a :func:`save_regressor` file (no code execution) as a fresh, uncached network.
    Returns ``(net in eval mode, meta)``.

    Raises:
        AssetError: the file does not exist, or is not a recon3d landmark-regressor file.
    """
    return load_network(LANDMARK_NET, path, device=device, cached=False)


@dataclass(frozen=True)
class RegressorOutput:
    """Landmarks of one face from :class:`LandmarkRegressor`.

    Attributes:
        lmk_px: ``(68, 2)`` float32 image pixels (0-based), 3-D convention (see module doc).
        lmk_z: ``(68,)`` relative depth in image pixels (larger is further away).
        pose_deg: ``(3,)`` yaw, pitch, roll in degrees (:mod:`recon3d.conventions`).
        box_xyxy: ``(4,)`` the crop box of the last pass.
    """

    lmk_px: np.ndarray
    lmk_z: np.ndarray
    pose_deg: np.ndarray
    box_xyxy: np.ndarray


class LandmarkRegressor:
    """Crop, run :class:`LandmarkNet`, map back to image pixels; ``passes`` re-crops.

    Args:
        net: a trained :class:`LandmarkNet` (eval mode).
        passes: crops per face (the second and later around the previous landmarks).
        flip_test: also run the mirrored crop and average (twice the network time).
        device: where to run.
    """

    def __init__(self, net: LandmarkNet, *, passes: int = 2, flip_test: bool = False,
                 device: torch.device | str | None = None):
        self.net = net.eval()
        self.passes = max(int(passes), 1)
        self.flip_test = bool(flip_test)
        self.device = torch.device(device) if device is not None else next(net.parameters()).device
        self.net.to(self.device)

    @torch.no_grad()
    def __call__(self, image: torch.Tensor | np.ndarray, box_xyxy: np.ndarray) -> RegressorOutput:
        """Landmarks of the face in ``box_xyxy`` (a crop box, e.g.
        :func:`~recon3d.ops.crop.crop_box_from_landmarks` of rough landmarks).

        Args:
            image: ``(H, W, 3)`` float RGB in [0, 1] or uint8.
            box_xyxy: ``(4,)`` square-ish crop box in pixels.
        """
        img = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
        if img.ndim != 3 or img.shape[-1] != 3:
            raise ShapeError(f"LandmarkRegressor: image must be (H, W, 3), got {tuple(img.shape)}")
        if img.dtype == torch.uint8:
            img = img.float() / 255.0
        img = img.to(self.device)
        box = np.asarray(box_xyxy, dtype=np.float64).reshape(4)
        m = (STORED_SIZE - INPUT_SIZE) // 2
        for _ in range(self.passes):
            x, (x0, y0, side) = crop_square_resized(img, box, STORED_SIZE, INPUT_SIZE)
            xn = standardise(x, MEAN, STD)
            if self.flip_test:
                xy, z, pose = decode(self.net(torch.cat([xn, xn.flip(-1)], 0)))
                perm = list(IBUG68_MIRROR)
                xf = xy[1:, perm].clone()
                xf[..., 0] = (INPUT_SIZE - 1) - xf[..., 0]
                xy = (xy[:1] + xf) / 2
                z = (z[:1] + z[1:, perm]) / 2
                pose = (pose[:1] + pose[1:] * torch.tensor([-1.0, 1.0, -1.0], device=pose.device)) / 2
            else:
                xy, z, pose = decode(self.net(xn))
            s = side / STORED_SIZE
            q = xy[0].cpu().numpy().astype(np.float64)
            lmk = np.stack([x0 + (q[:, 0] + m + 0.5) * s - 0.5, y0 + (q[:, 1] + m + 0.5) * s - 0.5], 1)
            last = box
            box = crop_box_from_landmarks(lmk)
        return RegressorOutput(lmk_px=lmk.astype(np.float32), lmk_z=(z[0].cpu().numpy() * s).astype(np.float32),
                               pose_deg=pose[0].cpu().numpy().astype(np.float32), box_xyxy=last.astype(np.float32))


def load_regressor(path: str | Path | None = None, *, device: torch.device | str | None = None,
                   passes: int = 2, flip_test: bool = True) -> LandmarkRegressor:
    """The shipped regressor (``assets/recon3d_landmarks_v1.safetensors``, checksum-verified) or
    the weights at ``path``. The network is loaded once per (path, device) and cached by
    :mod:`recon3d.nn.registry`. The defaults (two passes, mirrored-crop averaging) are what the
    benchmarks in docs/BENCHMARKS.md used.

    Raises:
        AssetError: the shipped file (or ``path``) is missing, corrupt or not a regressor file.
    """
    net, _ = load_network(LANDMARK_NET, path, device=device)
    return LandmarkRegressor(net, passes=passes, flip_test=flip_test, device=device)
