"""The identity network (the ArcFace role): a pure-PyTorch port of dlib's face recognition ResNet.

:class:`IdentityNet` reproduces the metric network of dlib's ``dnn_face_recognition_ex.cpp``
(Davis King, dlib 19.x; weights ``dlib_face_recognition_resnet_model_v1.dat``, installed by the
``face-recognition-models`` package): a 7x7/2 convolution, batch norm folded into per-channel
affine layers, a 3x3/2 max pool, 14 residual blocks (32, 64, 128, 256, 256 channels; the
down-sampling blocks add a 2x2 average pool of their input, zero-padded in channels and space to
the block's size, as dlib's ``add_prev`` does), a global average pool and a 128-d fully connected
layer without bias. The input is a 150 x 150 face chip aligned as dlib's ``get_face_chip`` does
(:func:`face_chip_transform`, :func:`extract_chip`).

**Input convention**: ``(N, 3, 150, 150)`` float RGB in **[0, 1]** (NCHW). The network maps it to
dlib's 8-bit scale and applies dlib's own normalisation, ``(255 x - mean) / 256`` with the mean
pixel (122.782, 117.001, 104.298). ``forward`` returns the ``(N, 128)`` descriptor (dlib's metric:
euclidean distance, same person below 0.6); :meth:`IdentityNet.features` the intermediate
activations for a feature-matching loss. Everything is differentiable with respect to the input.

Weights are read from dlib's own ``.dat`` by :func:`read_dlib_dat`, our parser of dlib's
serialisation format (numpy only: no pickle, no code executed; the file is a sequence of layer
records written from the input up, see :func:`read_dlib_dat`), or from our safetensors format
through :data:`IDENTITY_NET` (:func:`convert_dlib_dat`). :func:`load_identity_net` caches the
network through :mod:`recon3d._cache`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._cache import cached as _cached
from ..errors import AssetError, ShapeError
from .face_chip import (  # noqa: F401  (re-exported: the chip is part of the identity network's API)
    CHIP_PADDING,
    CHIP_SIZE,
    aligned_chip_matrix,
    extract_chip,
    face_chip_transform,
)
from .registry import NetworkSpec, load_network, save_network

__all__ = [
    "CHIP_SIZE", "CHIP_PADDING", "DLIB_MEAN_RGB", "IDENTITY_NET", "DlibLayer", "IdentityNet",
    "read_dlib_dat", "identity_net_from_dat", "load_identity_net", "convert_dlib_dat", "dlib_identity_dat_path",
    "face_chip_transform", "extract_chip", "aligned_chip_matrix", "embed_aligned",
    "identity_distance", "feature_distance",
]

#: dlib's mean pixel (``input_rgb_image_sized``), 8-bit RGB
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
_DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
# (channels, blocks, first block down-samples) of dlib's alevel4 .. alevel0
_LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


# --------------------------------------------------------------------------------------------
# the network

class _Affine(nn.Module):
    """dlib's ``affine`` layer (a batch norm folded into ``x * weight + bias`` per channel)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class _Block(nn.Module):
    """dlib's ``ares`` / ``ares_down``: relu(block(x) + shortcut(x)) with
    block = affine(con3x3(relu(affine(con3x3/stride(x))))) and shortcut = x or avg_pool2x2(x)."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.aff1 = _Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1)
        self.aff2 = _Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        s = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_padded(y, s))


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev`` of tensors of different sizes: the sum over the larger shape, each
    operand zero outside its own extent (channels and rows/columns at the end)."""
    if a.shape == b.shape:
        return a + b
    size = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:], strict=True)]

    def pad(t):
        return F.pad(t, (0, size[2] - t.shape[3], 0, size[1] - t.shape[2], 0, size[0] - t.shape[1]))

    return pad(a) + pad(b)


class IdentityNet(nn.Module):
    """dlib's face recognition ResNet (see the module doc). Input ``(N, 3, 150, 150)`` float RGB in
    [0, 1]; output the ``(N, 128)`` descriptor. Build it empty and load weights with
    :func:`identity_net_from_dat` or :func:`load_identity_net`."""

    def __init__(self, dim: int = 128):
        super().__init__()
        self.config = {"dim": int(dim)}
        self.register_buffer("mean_rgb", torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.stem = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.stem_aff = _Affine(32)
        blocks, cin = [], 32
        for cout, n, down in _LEVELS:
            level = [_Block(cin, cout, down)] + [_Block(cout, cout, False) for _ in range(n - 1)]
            blocks.append(nn.Sequential(*level))
            cin = cout
        self.levels = nn.ModuleList(blocks)
        self.fc = nn.Linear(256, dim, bias=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB -> dlib's network input ``(255 x - mean) / 256``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"IdentityNet: input must be (N, 3, H, W) RGB, got {tuple(x.shape)}")
        return (x * 255.0 - self.mean_rgb.to(x.dtype)) / 256.0

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate activations: after the stem's max pool (32 x 35 x 35) and after each of
        the five levels (32 x 35 x 35, 64 x 17 x 17, 128 x 8 x 8, 256 x 4 x 4, 256 x 2 x 2 for a
        150 px chip)."""
        h = F.max_pool2d(F.relu(self.stem_aff(self.stem(self.normalise(x)))), 3, 2)
        out = [h]
        for level in self.levels:
            h = level(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, 150, 150)`` [0, 1] RGB -> ``(N, 128)`` descriptor."""
        return self.fc(self.features(x)[-1].mean((2, 3)))


#: registry entry of our safetensors copy (not shipped: the installed dlib .dat is the source)
IDENTITY_NET = NetworkSpec(name="identity", cls=IdentityNet, format="recon3d-identity-v1",
                           what="identity network (dlib face recognition ResNet)", asset=None)


# --------------------------------------------------------------------------------------------
# dlib's serialisation format

@dataclass
class DlibLayer:
    """One layer record of a dlib network file.

    Attributes:
        kind: the record's tag without version (``"con"``, ``"affine"``, ``"relu"``, ``"max_pool"``,
            ``"avg_pool"``, ``"add_prev"``, ``"fc"``, ``"input_rgb_image_sized"``, ``"loss_metric"``).
        config: integers and floats of the record (``num_filters``, ``nr``, ``stride_y``, ...).
        params: named float32 arrays (``filters (K, C, R, C)``, ``biases (K,)``, ``gamma``, ``beta``,
            ``weights (in, out)``).
    """

    kind: str
    config: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


class _Reader:
    """Bounds-checked reader of dlib's primitives (dlib/serialize.h): integers as one control byte
    (low nibble: byte count, bit 7: negative) plus little-endian magnitude bytes; floats as an
    integer mantissa and exponent; strings as a length and bytes; bools as the characters '0'/'1';
    tensors (version 2) as four dimensions and raw little-endian float32 values."""

    def __init__(self, data: bytes, path: Path):
        self.d, self.i, self.path = data, 0, path

    def fail(self, what: str):
        raise AssetError(f"{self.path}: not a dlib face recognition network file ({what} at byte {self.i}); "
                         f"reinstall it with pip install --force-reinstall face-recognition-models")

    def take(self, n: int) -> bytes:
        if n < 0 or self.i + n > len(self.d):
            self.fail("truncated")
        b = self.d[self.i:self.i + n]
        self.i += n
        return b

    def int(self) -> int:
        c = self.take(1)[0]
        n = c & 0x0F
        if n > 8 or c & 0x70:
            self.fail(f"bad integer control byte 0x{c:02x}")
        v = int.from_bytes(self.take(n), "little")
        return -v if c & 0x80 else v

    def float(self) -> float:
        m, e = self.int(), self.int()
        if abs(e) >= 32000:  # dlib's codes for inf / nan
            self.fail("non-finite float")
        return float(np.ldexp(float(m), e))

    def str(self, limit: int = 64) -> str:
        n = self.int()
        if not 0 <= n <= limit:
            self.fail(f"bad string length {n}")
        try:
            return self.take(n).decode("ascii")
        except UnicodeDecodeError:
            self.fail("non-ASCII string")

    def bool(self) -> bool:
        c = self.take(1)
        if c not in (b"0", b"1"):
            self.fail("bad bool")
        return c == b"1"

    def dims(self, version: int) -> tuple[int, int, int, int]:
        v = self.int()
        if v != version:
            self.fail(f"tensor version {v}, expected {version}")
        d = tuple(self.int() for _ in range(4))
        if min(d) < 0 or int(np.prod(d)) > 1 << 26:
            self.fail(f"bad tensor dimensions {d}")
        return d

    def tensor(self) -> np.ndarray:
        d = self.dims(2)
        n = int(np.prod(d))
        return np.frombuffer(self.take(4 * n), dtype="<f4").astype(np.float32).reshape(d)


def _split(params: np.ndarray, shapes: list[tuple[int, ...]], r: _Reader) -> list[np.ndarray]:
    flat, out, o = params.reshape(-1), [], 0
    for s in shapes:
        n = int(np.prod(s))
        if o + n > flat.size:
            r.fail(f"parameter tensor of {flat.size} values cannot hold {shapes}")
        out.append(flat[o:o + n].reshape(s))
        o += n
    if o != flat.size:
        r.fail(f"parameter tensor of {flat.size} values, expected {o}")
    return out


def _layer(r: _Reader, tag: str) -> DlibLayer:
    kind, _, version = tag.rpartition("_")
    if kind == "con" and version == "4":
        params = r.tensor()
        cfg = {k: r.int() for k in ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}
        fd, bd = r.dims(1), r.dims(1)
        filters, biases = _split(params, [fd, (bd[1],)], r)
        cfg.update({k: r.float() for k in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult")})
        return DlibLayer("con", cfg, {"filters": filters, "biases": biases})
    if kind == "affine" and version == "":
        params = r.tensor()
        gd, bd = r.dims(1), r.dims(1)
        gamma, beta = _split(params, [(gd[1],), (bd[1],)], r)
        return DlibLayer("affine", {"mode": r.int()}, {"gamma": gamma, "beta": beta})
    if kind in ("relu", "add_prev") and version == "":
        return DlibLayer(kind)
    if kind in ("max_pool", "avg_pool") and version == "2":
        return DlibLayer(kind, {k: r.int() for k in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")})
    if kind == "fc" and version == "2":
        n_out, n_in = r.int(), r.int()
        params = r.tensor()
        wd, bd = r.dims(1), r.dims(1)
        shapes = [wd[:2]] + ([(bd[1],)] if int(np.prod(bd)) else [])
        parts = _split(params, shapes, r)
        cfg = {"num_outputs": n_out, "num_inputs": n_in, "bias_mode": r.int()}
        cfg.update({k: r.float() for k in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult")})
        return DlibLayer("fc", cfg, {"weights": parts[0], **({"biases": parts[1]} if len(parts) > 1 else {})})
    r.fail(f"unsupported layer record {tag!r}")


def read_dlib_dat(path: str | os.PathLike) -> list[DlibLayer]:
    """Parse a dlib DNN file with a ``loss_metric`` head (dlib's face recognition network).

    dlib writes a network recursively (``dlib/dnn/core.h``): the loss record first, then one
    version integer per layer from the output down (2 for a computational layer, 1 for a tag or
    skip, 3 for the layer on the input), then the input record, then each computational layer's
    record from the input up, each followed by three bools and three (empty) training tensors (the
    first also by its sample expansion factor, 1).
    Tags and skips write nothing else, so the structure is not in the file: the caller matches the
    layer sequence against the architecture it expects.

    Returns:
        the records in file order: ``loss_metric``, ``input_rgb_image_sized``, then the layers.

    Raises:
        AssetError: missing, truncated or corrupt file, or a layer kind this parser does not know.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AssetError(f"{path}: cannot read the dlib network file ({e.strerror}); "
                         f"pip install face-recognition-models") from e
    r = _Reader(data, path)
    if r.int() != 1 or r.str() != "loss_metric_2":
        r.fail("no loss_metric_2 header")
    out = [DlibLayer("loss_metric", {"margin": r.float(), "distance_threshold": r.float()})]
    n_layers = n_tags = 0
    while True:
        v = r.int()
        if v == 2:
            n_layers += 1
        elif v == 1:
            n_tags += 1
        elif v == 3:
            n_layers += 1
            break
        else:
            r.fail(f"bad layer version {v}")
    if r.str() != "input_rgb_image_sized":
        r.fail("no input_rgb_image_sized record")
    mean = tuple(r.float() for _ in range(3))
    out.append(DlibLayer("input_rgb_image_sized", {"mean_rgb": mean, "nr": r.int(), "nc": r.int(),
                                                   "n_tags": n_tags}))
    for k in range(n_layers):
        out.append(_layer(r, r.str()))
        for _ in range(3):
            r.bool()
        for _ in range(3):
            if int(np.prod(r.dims(2))) != 0:
                r.fail("non-empty training tensor")
        if k == 0 and r.int() != 1:  # the layer on the input (version 3) adds its sample expansion factor
            r.fail("bad sample expansion factor")
    if r.i != len(data):
        r.fail(f"{len(data) - r.i} trailing bytes")
    return out


# --------------------------------------------------------------------------------------------
# dlib records -> IdentityNet

def _expected_kinds() -> list[str]:
    kinds = ["con", "affine", "relu", "max_pool"]
    for _, n, down in _LEVELS:
        for b in range(n):
            kinds += ["con", "affine", "relu", "con", "affine"]
            kinds += ["avg_pool", "add_prev", "relu"] if (down and b == 0) else ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


def identity_net_from_dat(path: str | os.PathLike | None = None) -> IdentityNet:
    """An :class:`IdentityNet` (eval mode, CPU, float32) with the weights of a dlib ``.dat``
    (default: the installed ``dlib_face_recognition_resnet_model_v1.dat``).

    Raises:
        AssetError: missing or corrupt file, or a network that is not dlib's face recognition ResNet.
    """
    path = Path(path) if path is not None else dlib_identity_dat_path()
    recs = read_dlib_dat(path)
    inp, layers = recs[1], recs[2:]
    kinds = [rec.kind for rec in layers]
    if kinds != _expected_kinds() or (inp.config["nr"], inp.config["nc"]) != (CHIP_SIZE, CHIP_SIZE) \
            or np.abs(np.subtract(inp.config["mean_rgb"], DLIB_MEAN_RGB)).max() > 1e-3:
        raise AssetError(f"{path}: a dlib network, but not the face recognition ResNet this port expects "
                         f"({len(layers)} layers); use dlib_face_recognition_resnet_model_v1.dat")
    net = IdentityNet()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    affs = [m for m in net.modules() if isinstance(m, _Affine)]
    con_recs = [rec for rec in layers if rec.kind == "con"]
    aff_recs = [rec for rec in layers if rec.kind == "affine"]
    try:
        with torch.no_grad():
            for m, rec in zip(convs, con_recs, strict=True):
                c = rec.config
                if (c["stride_y"], c["padding_y"]) != (m.stride[0], m.padding[0]) or \
                        rec.params["filters"].shape != tuple(m.weight.shape):
                    raise ValueError(f"convolution {rec.params['filters'].shape} stride {c['stride_y']}")
                m.weight.copy_(torch.from_numpy(rec.params["filters"]))
                m.bias.copy_(torch.from_numpy(rec.params["biases"]))
            for m, rec in zip(affs, aff_recs, strict=True):
                m.weight.copy_(torch.from_numpy(rec.params["gamma"]))
                m.bias.copy_(torch.from_numpy(rec.params["beta"]))
            w = layers[-1].params["weights"]  # (in, out): dlib computes x @ W
            net.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
    except (ValueError, RuntimeError) as e:
        raise AssetError(f"{path}: layer shapes do not match dlib's face recognition ResNet ({e})") from e
    return net.eval()


def dlib_identity_dat_path() -> Path:
    """Path of the installed ``dlib_face_recognition_resnet_model_v1.dat`` (``face-recognition-models``,
    located with ``importlib`` without importing the package).

    Raises:
        AssetError: the package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        p = Path(loc) / "models" / _DAT_NAME
        if p.is_file():
            return p
    raise AssetError(f"{_DAT_NAME} not found: pip install face-recognition-models")


def load_identity_net(path: str | os.PathLike | None = None, device: torch.device | str | None = None,
                      *, cached: bool = True) -> IdentityNet:
    """The identity network in eval mode on ``device`` (default CPU).

    Args:
        path: a dlib ``.dat`` or our safetensors copy (:func:`convert_dlib_dat`), told apart by the
            suffix ``.safetensors``; default: the installed dlib ``.dat``.
        device: where to put it.
        cached: return the process-wide shared copy (key ``("nn", "identity", path, device)``); do
            not train or modify it (``cached=False`` for a private copy).

    Raises:
        AssetError: missing or corrupt file.
    """
    if path is not None and str(path).endswith(".safetensors"):
        return load_network(IDENTITY_NET, path, device=device, cached=cached)[0]

    def build():
        net = identity_net_from_dat(path)
        return net.to(device) if device is not None else net

    if not cached:
        return build()
    return _cached(("nn", "identity", str(path), str(device)), build)


def convert_dlib_dat(out: str | os.PathLike, dat: str | os.PathLike | None = None, *, half: bool = False) -> None:
    """Write the dlib ``.dat`` (default: the installed one) as our safetensors format
    (:data:`IDENTITY_NET`; float32 unless ``half``)."""
    src = Path(dat) if dat is not None else dlib_identity_dat_path()
    save_network(identity_net_from_dat(src), out, IDENTITY_NET, half=half,
                 meta={"source": src.name, "converted_by": "recon3d.nn.identity.convert_dlib_dat"})


def embed_aligned(images: torch.Tensor, net: IdentityNet | None = None, *, batch: int = 64,
                  device: torch.device | str | None = None) -> np.ndarray:
    """Identity descriptors ``(N, 128)`` float64 of template-aligned faces ``(N, 3, res, res)`` in
    **[-1, 1]** (the generators' range), through :func:`aligned_chip_matrix` and the network
    (default: :func:`load_identity_net`). Used by FD-dlib / KID-dlib and by identity metrics of
    generated, restored or inverted faces."""
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ShapeError(f"embed_aligned(): expected (N, 3, res, res) images, got {tuple(images.shape)}")
    net = net if net is not None else load_identity_net(device=device)
    dev = next(net.parameters()).device
    m = aligned_chip_matrix(int(images.shape[2]))
    out = []
    with torch.no_grad():
        for x in images.split(batch):
            x01 = ((x.float() + 1) / 2).clamp(0, 1).to(dev)
            chips = extract_chip(x01, np.broadcast_to(m, (len(x), 2, 3)))
            out.append(net(chips).double().cpu())
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------------------------
# distances on the network (identity loss, feature matching; used by inversion and by training)

def _chips(x: torch.Tensor, matrices, what: str) -> torch.Tensor:
    if matrices is not None:
        return extract_chip(x, matrices)
    if x.ndim != 4 or tuple(x.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
        raise ShapeError(f"{what}: without matrices the input must be (B, 3, {CHIP_SIZE}, {CHIP_SIZE}) chips, "
                         f"got {tuple(x.shape)}")
    return x


def identity_distance(net, a: torch.Tensor, b: torch.Tensor, *, matrices_a=None, matrices_b=None,
                  metric: str = "l2") -> torch.Tensor:
    """Identity distance of ``a`` and ``b`` per sample.

    Args:
        net: an :class:`~recon3d.nn.identity.IdentityNet`.
        a: ``(B, 3, 150, 150)`` chips, or ``(B, 3, H, W)`` images with ``matrices_a``.
        b: the same for the other side (often the target, detached).
        matrices_a: ``(B, 2, 3)`` chip matrices of ``a`` (None: ``a`` is already chips).
        matrices_b: the same for ``b``.
        metric: ``"l2"`` (default): ``|d_a - d_b|``, dlib's metric (same person below 0.6);
            ``"cosine"``: ``1 - cos(d_a, d_b)``.

    Returns:
        ``(B,)`` losses.

    Raises:
        ShapeError: inputs are neither chips nor images with matrices, or batch sizes differ.
        ValueError: unknown ``metric``.
    """
    if metric not in ("l2", "cosine"):
        raise ValueError(f"identity_distance(): metric must be 'l2' or 'cosine', got {metric!r}")
    da = net(_chips(a, matrices_a, "identity_distance()"))
    db = net(_chips(b, matrices_b, "identity_distance()"))
    if da.shape != db.shape:
        raise ShapeError(f"identity_distance(): a and b give {tuple(da.shape)} and {tuple(db.shape)} descriptors")
    if metric == "l2":
        return (da - db).pow(2).sum(1).add(1e-12).sqrt()
    return 1 - torch.nn.functional.cosine_similarity(da, db, dim=1, eps=1e-8)


def feature_distance(net, a: torch.Tensor, b: torch.Tensor, weights: Sequence[float] | None = None, *,
                          matrices_a=None, matrices_b=None) -> torch.Tensor:
    """Feature-matching loss on the identity network's intermediate activations, per sample.

    For each activation map (:meth:`~recon3d.nn.identity.IdentityNet.features`: the stem and the
    five residual levels) the features at each position are divided by their L2 norm over the
    channels, then the mean absolute difference is taken; the layers are summed with ``weights``.

    Args:
        net: an :class:`~recon3d.nn.identity.IdentityNet`.
        a, b: chips, or images with ``matrices_a`` / ``matrices_b`` (as :func:`identity_distance`).
        weights: one weight per feature map (6); default ``1/6`` each.

    Returns:
        ``(B,)`` losses.

    Raises:
        ShapeError: bad inputs (see :func:`identity_distance`).
        ValueError: ``weights`` of the wrong length.
    """
    fa = net.features(_chips(a, matrices_a, "feature_distance()"))
    fb = net.features(_chips(b, matrices_b, "feature_distance()"))
    w = [1.0 / len(fa)] * len(fa) if weights is None else list(weights)
    if len(w) != len(fa):
        raise ValueError(f"feature_distance(): {len(fa)} feature maps, got {len(w)} weights")
    total = 0
    for wi, x, y in zip(w, fa, fb, strict=True):
        if x.shape != y.shape:
            raise ShapeError(f"feature_distance(): feature maps {tuple(x.shape)} and {tuple(y.shape)} differ")
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)
        y = y / y.norm(dim=1, keepdim=True).clamp_min(1e-6)
        total = total + wi * (x - y).abs().mean((1, 2, 3))
    return total
