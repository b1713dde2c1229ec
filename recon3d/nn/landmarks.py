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

from ..camera import matrix_to_pose_angles
from ..conventions import IBUG68_MIRROR
from ..errors import ShapeError
from ..ops.align import TEMPLATE_68
from ..ops.crop import LANDMARK_CROP_SCALE, crop_box_from_landmarks, crop_square_resized
from .preprocess import standardise
from .registry import NetworkSpec, load_network, save_network

__all__ = ["LandmarkNet", "LandmarkRegressor", "RegressorOutput", "load_regressor", "load_regressor_net", "save_regressor",
           "normalise", "decode", "encode_targets", "LANDMARK_NET", "STORED_SIZE", "INPUT_SIZE", "FORMAT",
           "REGRESSOR_ASSET", "MEAN", "STD", "REGRESSOR_VERSIONS", "POSE_REGRESSOR", "neighbours_68", "rot6d_to_matrix", "pose_to_degrees", "gather_cells",
           "regressor_crop_grid", "frame_pose"]

#: side of the stored training crops and of the first resampling at inference
STORED_SIZE = 128
#: network input side (the central part of a STORED_SIZE crop)
INPUT_SIZE = 112
#: shipped regressor versions by name (``load_regressor("v1")``); the default is :data:`REGRESSOR_ASSET`
REGRESSOR_VERSIONS = {"v1": "recon3d_landmarks_v1.safetensors", "v2": "recon3d_landmarks_v2.safetensors",
                      "v3": "recon3d_landmarks_v3.safetensors"}
#: file name of the default shipped weights in assets/ (one of :data:`REGRESSOR_VERSIONS`)
REGRESSOR_ASSET = REGRESSOR_VERSIONS["v3"]
#: the shipped version with the fully connected head, whose pose :func:`frame_pose` reads differentiably (the
#: pose losses of the refiner and latent-editor recipes, and the latent editor's source pose, use it)
POSE_REGRESSOR = "v1"
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


def neighbours_68(k: int) -> list[list[int]]:
    """For each of the 68 landmarks, its ``k`` nearest others on the frontal template
    (:data:`recon3d.ops.align.TEMPLATE_68`): the neighbour lists of PIP's neighbour regression.

    >>> n = neighbours_68(3)
    >>> len(n), len(n[0]), 0 in n[0]
    (68, 3, False)
    """
    t = TEMPLATE_68.astype(np.float64)
    d = np.linalg.norm(t[:, None] - t[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return [[int(j) for j in np.argsort(d[i], kind="stable")[:k]] for i in range(68)]


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """``(..., 6)`` (two columns of a rotation, unnormalised) -> ``(..., 3, 3)`` rotation by
    Gram-Schmidt (Zhou et al. 2019's continuous 6-D representation).

    >>> R = rot6d_to_matrix(torch.tensor([2.0, 0, 0, 1, 3, 0]))
    >>> R.tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], -1)


class LandmarkNet(nn.Module):
    """Crop ``(B, 3, S, S)`` (normalised) -> landmarks, depth and head pose.

    Two heads on one backbone (``head=``):

    * ``"fc"`` (the shipped v1 weights): two fully connected layers on the flattened 4x4 map output
      ``(B, 68*3 + 3)``: x, y in [-1, 1] of the crop, depth (crop half-widths), then yaw, pitch,
      roll / 90 degrees (:func:`decode`).
    * ``"pip"``: PIP-style heatmap + offset regression (Jin et al. 2021, "Pixel-in-Pixel Net") on the
      7x7 map (stride 16; the 4x4 map upsampled and added): per landmark a cell score map, the
      sub-cell offset, the depth and the offsets of its ``neighbours`` nearest template landmarks
      from its cell, all 1x1 convolutions. :meth:`predict` takes each landmark's best cell and
      averages its own estimate with its neighbours' votes. The pose comes from its own head: a
      fully connected branch on the 4x4 map outputs a 6-D rotation (``pose="6d"``,
      :func:`rot6d_to_matrix`), trained with the geodesic loss.

    :meth:`forward` returns the raw outputs (a tensor for ``"fc"``, a dict for ``"pip"``);
    :meth:`predict` returns ``(landmarks (B, 68, 2) input-crop pixels, depth (B, 68) pixels,
    pose (B, 3) degrees)`` for both.

    >>> net = LandmarkNet().eval()
    >>> net(torch.zeros(2, 3, 112, 112)).shape
    torch.Size([2, 207])
    >>> [t.shape for t in LandmarkNet(head="pip").eval().predict(torch.zeros(2, 3, 112, 112))]
    [torch.Size([2, 68, 2]), torch.Size([2, 68]), torch.Size([2, 3])]
    """

    def __init__(self, width: tuple[int, ...] = (16, 24, 48, 96, 160), hidden: int = 256, input_size: int = INPUT_SIZE,
                 head: str = "fc", pose: str | None = None, neck: int = 96, neighbours: int = 6):
        super().__init__()
        if head not in ("fc", "pip"):
            raise ValueError(f"LandmarkNet: head must be 'fc' or 'pip', got {head!r}")
        pose = pose or ("euler" if head == "fc" else "6d")
        if pose != ("euler" if head == "fc" else "6d"):
            raise ValueError(f"LandmarkNet: the {head!r} head has pose {'euler' if head == 'fc' else '6d'!r}, got {pose!r}")
        self.head, self.pose = head, pose
        self.config = {"width": list(width), "hidden": hidden, "input_size": input_size}
        if head != "fc":
            self.config.update(head=head, pose=pose, neck=neck, neighbours=neighbours)
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
        n_pose = 3 if pose == "euler" else 6
        self.fc2 = nn.Linear(hidden, (68 * 3 if head == "fc" else 0) + n_pose)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)
        if pose == "6d":  # start at the frontal pose (recon3d.camera.frontal_rotation's columns)
            with torch.no_grad():
                self.fc2.bias[-6:] = torch.tensor([1.0, 0.0, 0.0, 0.0, -1.0, 0.0])
        if head == "pip":
            self.grid = (input_size + 15) // 16
            self.nb = neighbours_68(neighbours)
            self.lat = nn.Sequential(nn.Conv2d(w[-2], neck, 1, bias=False), nn.BatchNorm2d(neck))
            self.top = nn.Sequential(nn.Conv2d(w[-1], neck, 1, bias=False), nn.BatchNorm2d(neck))
            self.fuse = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(neck, neck, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(neck), nn.ReLU(inplace=True))
            self.out = nn.Conv2d(neck, 68 * (1 + 2 + 1 + 2 * neighbours), 1)
            nn.init.normal_(self.out.weight, std=0.001)
            nn.init.zeros_(self.out.bias)
            # decode tables: landmark j's votes come from (i, slot) with nb[i][slot] == j
            src = [(i, k) for j in range(68) for i in range(68) for k in range(neighbours) if self.nb[i][k] == j]
            cnt = [sum(1 for i in range(68) for k in range(neighbours) if self.nb[i][k] == j) for j in range(68)]
            self.register_buffer("_vote_i", torch.tensor([a for a, _ in src], dtype=torch.long), persistent=False)
            self.register_buffer("_vote_k", torch.tensor([b for _, b in src], dtype=torch.long), persistent=False)
            self.register_buffer("_vote_j", torch.tensor([j for j in range(68) for _ in range(cnt[j])], dtype=torch.long),
                                 persistent=False)
            self.register_buffer("_vote_n", torch.tensor(cnt, dtype=torch.float32) + 1.0, persistent=False)

    def forward(self, x: torch.Tensor):
        y = self.stem(x)
        if self.head == "fc":
            y = self.body(y)
            return self.fc2(F.relu(self.fc1(y.flatten(1)), inplace=True))
        cut = len(self.body) - 2
        f7 = self.body[:cut](y)
        f4 = self.body[cut:](f7)
        pose = self.fc2(F.relu(self.fc1(f4.flatten(1)), inplace=True))
        n = self.lat(f7) + F.interpolate(self.top(f4), size=f7.shape[-2:], mode="nearest")
        o = self.out(self.fuse(n))
        B, _, G, _ = o.shape
        K = len(self.nb[0])
        return {"heat": o[:, :68], "off": o[:, 68:68 * 3].reshape(B, 68, 2, G, G), "z": o[:, 68 * 3:68 * 4],
                "nb": o[:, 68 * 4:].reshape(B, 68, K, 2, G, G), "pose": pose}

    def cell_size(self) -> float:
        """Input pixels per heatmap cell (``"pip"`` head)."""
        return self.config["input_size"] / self.grid

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Landmarks ``(B, 68, 2)`` in input-crop pixels, depth ``(B, 68)`` in crop pixels and pose
        ``(B, 3)`` degrees, for either head."""
        out = self(x)
        if self.head == "fc":
            return decode(out, self.config["input_size"])
        heat = out["heat"]
        G = heat.shape[-1]
        idx = heat.flatten(2).argmax(-1)  # (B, 68)
        cy, cx = (idx // G).float(), (idx % G).float()

        def at(m: torch.Tensor) -> torch.Tensor:
            return gather_cells(m, idx)

        off = at(out["off"])  # (B, 68, 2)
        own = torch.stack([cx, cy], -1) + off
        nb = at(out["nb"])  # (B, 68, K, 2): landmark i's estimate of its neighbours, from i's cell
        votes = torch.stack([cx, cy], -1)[:, self._vote_i] + nb[:, self._vote_i, self._vote_k]
        u = own.clone().index_add_(1, self._vote_j, votes) / self._vote_n[None, :, None]
        s = self.cell_size()
        xy = u * s - 0.5
        half = self.config["input_size"] / 2.0
        z = at(out["z"][:, :, None])[:, :, 0] * half
        return xy, z, pose_to_degrees(out["pose"], self.pose)


def gather_cells(m: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``m (B, 68, ..., G, G)`` read at each landmark's cell ``idx (B, 68)`` (flat ``y * G + x``)
    -> ``(B, 68, ...)``.

    >>> m = torch.arange(68 * 4.0).view(1, 68, 2, 2, 1)
    >>> gather_cells(m, torch.ones(1, 68, dtype=torch.long))[0, 0].tolist()
    [1.0, 3.0]
    """
    flat = m.flatten(-2)
    shape = idx.shape + (1,) * (flat.dim() - 3) + (1,)
    return flat.gather(-1, idx.view(shape).expand(*flat.shape[:-1], 1)).squeeze(-1)


def pose_to_degrees(p: torch.Tensor, kind: str) -> torch.Tensor:
    """A pose output (``"euler"``: (yaw, pitch, roll) / 90; ``"6d"``: :func:`rot6d_to_matrix`'s input)
    -> ``(B, 3)`` yaw, pitch, roll in degrees."""
    if kind == "euler":
        return p * 90.0
    return torch.rad2deg(matrix_to_pose_angles(rot6d_to_matrix(p.double()))).to(p.dtype)


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
    """Load a :func:`save_regressor` file (no code execution), a shipped version by name (:data:`REGRESSOR_VERSIONS`)
    or, for ``None``, the default as a fresh, uncached network. Returns ``(net in eval mode, meta)``.

    Raises:
        AssetError: the file does not exist, or is not a recon3d landmark-regressor file.
    """
    return load_network(LANDMARK_NET, _version_path(path), device=device, cached=False)


def _version_path(path):
    """A shipped version's name -> its asset path; anything else unchanged."""
    if isinstance(path, str) and path in REGRESSOR_VERSIONS:
        from ..assets import resolve

        return resolve(REGRESSOR_VERSIONS[path])
    return path


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
                xy, z, pose = self.net.predict(torch.cat([xn, xn.flip(-1)], 0))
                perm = list(IBUG68_MIRROR)
                xf = xy[1:, perm].clone()
                xf[..., 0] = (INPUT_SIZE - 1) - xf[..., 0]
                xy = (xy[:1] + xf) / 2
                z = (z[:1] + z[1:, perm]) / 2
                pose = (pose[:1] + pose[1:] * torch.tensor([-1.0, 1.0, -1.0], device=pose.device)) / 2
            else:
                xy, z, pose = self.net.predict(xn)
            s = side / STORED_SIZE
            q = xy[0].cpu().numpy().astype(np.float64)
            lmk = np.stack([x0 + (q[:, 0] + m + 0.5) * s - 0.5, y0 + (q[:, 1] + m + 0.5) * s - 0.5], 1)
            last = box
            box = crop_box_from_landmarks(lmk)
        return RegressorOutput(lmk_px=lmk.astype(np.float32), lmk_z=(z[0].cpu().numpy() * s).astype(np.float32),
                               pose_deg=pose[0].cpu().numpy().astype(np.float32), box_xyxy=last.astype(np.float32))


def load_regressor(path: str | Path | None = None, *, device: torch.device | str | None = None,
                   passes: int = 2, flip_test: bool = True) -> LandmarkRegressor:
    """The shipped regressor (:data:`REGRESSOR_ASSET`, checksum-verified), a shipped version by name
    (:data:`REGRESSOR_VERSIONS`, e.g. ``"v1"``) or the weights at ``path``. The network is loaded once per (path, device) and cached by
    :mod:`recon3d.nn.registry`. The defaults (two passes, mirrored-crop averaging) are what the
    benchmarks in docs/BENCHMARKS.md used.

    Raises:
        AssetError: the shipped file (or ``path``) is missing, corrupt or not a regressor file.
    """
    net, _ = load_network(LANDMARK_NET, _version_path(path), device=device)
    return LandmarkRegressor(net, passes=passes, flip_test=flip_test, device=device)


def regressor_crop_grid(lmk_frame: torch.Tensor, res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The landmark regressor's input crop of a ``res``² frame, as ``grid_sample`` coordinates.

    Args:
        lmk_frame: ``(B, 68, 2+)`` landmarks, x and y in [-1, 1] of the frame.
        res: the frame's side.

    Returns:
        ``(grid (B, INPUT_SIZE, INPUT_SIZE, 2), (x0, y0, s) (B, 3))``: crop pixel ``u`` is frame pixel
        ``x0 + (u + m + 0.5) s - 0.5`` with ``m = (STORED_SIZE - INPUT_SIZE) / 2``, as the regressor's own crop.
    """
    px = (lmk_frame[..., :2] + 1) / 2 * res - 0.5
    lo, hi = px.amin(1), px.amax(1)
    c = (lo + hi) / 2
    side = LANDMARK_CROP_SCALE * (hi - lo).amax(1)
    x0, y0 = c[:, 0] - side / 2, c[:, 1] - side / 2
    s = side / STORED_SIZE
    m = (STORED_SIZE - INPUT_SIZE) / 2
    u = torch.arange(INPUT_SIZE, dtype=px.dtype, device=px.device) + m + 0.5
    gx = x0[:, None] + u[None] * s[:, None] - 0.5  # frame pixels
    gy = y0[:, None] + u[None] * s[:, None] - 0.5
    nx, ny = (gx + 0.5) / res * 2 - 1, (gy + 0.5) / res * 2 - 1
    grid = torch.stack([nx[:, None, :].expand(-1, INPUT_SIZE, -1), ny[:, :, None].expand(-1, -1, INPUT_SIZE)], -1)
    return grid, torch.stack([x0, y0, s], 1)

def frame_pose(net: "LandmarkNet", frames: torch.Tensor, lmk_frame: torch.Tensor | None = None) -> torch.Tensor:
    """The head pose ``(B, 3)`` (yaw, pitch, roll in degrees) the fc-head regressor ``net`` reads from
    ``frames`` ``(B, 3, R, R)`` in [-1, 1], differentiably (one pass, no flip test).

    The crop is the regressor's own square around ``lmk_frame`` ``(B, 68, 2+)`` (x, y in [-1, 1] of the frame);
    by default :data:`~recon3d.ops.align.TEMPLATE_68`, the box of a template-aligned face (the generators'
    frame), which a turned head in that frame stays close to.

    Raises:
        ValueError: ``net`` has a heatmap head (v2), which gives no differentiable pose here.
    """
    if lmk_frame is None:
        lmk_frame = torch.as_tensor(TEMPLATE_68 * 2 - 1, dtype=frames.dtype, device=frames.device)[None]
        lmk_frame = lmk_frame.expand(frames.shape[0], -1, -1)
    grid, _ = regressor_crop_grid(lmk_frame, frames.shape[-1])
    crop = F.grid_sample((frames + 1) / 2, grid.to(frames), mode="bilinear", padding_mode="border", align_corners=False)
    out = net(standardise(crop, MEAN, STD))
    if isinstance(out, dict):
        raise ValueError("frame_pose(): needs a regressor with the fc head (v1)")
    return decode(out, INPUT_SIZE)[2]
