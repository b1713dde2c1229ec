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
from .registry import NetworkSpec, load_network, save_network

__all__ = [
    "CHIP_SIZE", "CHIP_PADDING", "DLIB_MEAN_RGB", "IDENTITY_NET", "DlibLayer", "IdentityNet",
    "read_dlib_dat", "identity_net_from_dat", "load_identity_net", "convert_dlib_dat", "dlib_identity_dat_path",
    "face_chip_transform", "extract_chip", "aligned_chip_matrix", "embed_aligned",
    "identity_distance", "feature_distance",
]

#: side of dlib's face chip (the network's input), pixels
CHIP_SIZE = 150
#: dlib's default chip padding for the descriptor (``compute_face_descriptor``)
CHIP_PADDING = 0.25
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


# --------------------------------------------------------------------------------------------
# the face chip (dlib's get_face_chip_details + extract_image_chip)

# dlib's mean face (interpolation.h, get_face_chip_details): landmarks 17..67 on the unit square
_MEAN_FACE_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004,
    0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036, 0.490127, 0.554217, 0.613373, 0.121737,
    0.187122, 0.265825, 0.334606, 0.260918, 0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751,
    0.719335, 0.254149, 0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874, 0.553364, 0.490127,
    0.42689)
_MEAN_FACE_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915,
    0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326,
    0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423,
    0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746, 0.784792, 0.824182,
    0.831803, 0.824182)
# the 68-point landmarks dlib aligns on: nose, eyes, outer lip and upper inner lip (no jaw, brows, lower lip)
_CHIP_POINTS_68 = tuple(i for i in range(27, 68) if not (55 <= i <= 59 or 65 <= i <= 67))
# dlib's 5-point template (shape_predictor_5_face_landmarks order: eye corners, nose base)
_TEMPLATE_5 = ((0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
               (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
               (0.4901123135679, 0.6277975316475))


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ A @ src + t`` (Umeyama 1991, no reflection), as dlib's
    ``find_similarity_transform``."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.ones(2)
    if np.linalg.det(cov) < 0:
        e[1] = -1
    rot = u @ np.diag(e) @ vt
    scale = (sig * e).sum() / (s ** 2).sum(1).mean()
    a = scale * rot
    return a, md - a @ ms


def face_chip_transform(landmarks, *, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """The 2 x 3 matrix mapping chip pixels ``(u, v, 1)`` to image pixels ``(x, y)`` of dlib's face
    chip (``get_face_chip_details(shape, size, padding)`` + ``extract_image_chip``).

    dlib fits a similarity from its mean face (68 points: the 33 points of nose, eyes and lips
    listed in ``_CHIP_POINTS_68``; 5 points: its 5-point template), padded by ``padding`` on each
    side and scaled to ``size``, to the landmarks; the chip then samples the rotated rectangle of
    side ``size x scale`` around the image of the chip centre; its corners (dlib's rectangles count
    the corner pixels, so they lie ``size x scale - 1`` apart) are chip pixels 0 and ``size - 1``, so
    the sampling step is ``(size x scale - 1) / (size - 1)``.

    Args:
        landmarks: ``(68, 2)`` or ``(5, 2)`` pixels (0-based, pixel centres at integers), or a
            batch ``(N, L, 2)``.
        size: chip side, pixels.
        padding: border around the template, as a fraction of its side (dlib's descriptor: 0.25).

    Returns:
        ``(2, 3)`` (or ``(N, 2, 3)``) float64.

    Raises:
        ShapeError: not 68 or 5 points.

    >>> m = face_chip_transform(np.array(_TEMPLATE_5) * 100 + 10, size=150, padding=0.0)
    >>> bool(np.allclose(m[:, :2], np.eye(2) * 99 / 149))
    True
    """
    lmk = np.asarray(landmarks, dtype=np.float64)
    if lmk.ndim == 3:
        return np.stack([face_chip_transform(p, size=size, padding=padding) for p in lmk])
    if lmk.ndim != 2 or lmk.shape not in ((68, 2), (5, 2)):
        raise ShapeError(f"face_chip_transform(): landmarks must be (68, 2) or (5, 2), got {lmk.shape}")
    if len(lmk) == 68:
        idx = list(_CHIP_POINTS_68)
        tmpl = np.stack([np.take(_MEAN_FACE_X, np.subtract(idx, 17)), np.take(_MEAN_FACE_Y, np.subtract(idx, 17))], 1)
        lmk = lmk[idx]
    else:
        tmpl = np.array(_TEMPLATE_5)
    a, t = _similarity((padding + tmpl) / (2 * padding + 1) * size, lmk)
    centre = a @ np.array([size / 2, size / 2]) + t
    scale = np.sqrt(abs(np.linalg.det(a)))
    step = a / scale * (size * scale - 1) / (size - 1)  # dlib's rectangle: corners (side - 1) apart
    return np.concatenate([step, (centre - step @ np.full(2, (size - 1) / 2))[:, None]], 1)


_PYR_W = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])


def _pyramid_down(img: torch.Tensor, quantize: bool) -> torch.Tensor:
    """dlib's ``pyramid_down<2>``: the 5 x 5 binomial filter, every other row and column, no border
    (``(H - 3) // 2`` rows); ``quantize`` floors to 8 bits as dlib does for uint8 images."""
    k = (_PYR_W[:, None] * _PYR_W[None, :] / 256.0).to(img)
    out = F.conv2d(img, k.expand(img.shape[1], 1, 5, 5), stride=2, groups=img.shape[1])
    return torch.floor(out * 255.0 + 1e-4) / 255.0 if quantize else out


def extract_chip(images: torch.Tensor, matrices, *, size: int = CHIP_SIZE, pyramid: bool = True,
                 quantize: bool = False) -> torch.Tensor:
    """Differentiable face chips, sampled as dlib's ``extract_image_chip`` does.

    Each chip pixel ``(u, v)`` is sampled bilinearly at ``matrices[n] @ (u, v, 1)`` (pixel centres at
    integer coordinates, i.e. ``grid_sample(align_corners=True)``); a sample whose 2 x 2
    neighbourhood leaves the image is 0, as in dlib. Like dlib, when the chip shrinks its
    rectangle by more than 2x (area ratio above 4) the image is first reduced with dlib's
    ``pyramid_down<2>`` (on the crop around the chip dlib uses, so the pixel grids agree) as often
    as needed, which avoids aliasing.

    Args:
        images: ``(N, 3, H, W)`` float RGB in [0, 1].
        matrices: ``(N, 2, 3)`` chip-to-image matrices (:func:`face_chip_transform`), numpy or torch.
            They are treated as constants (no gradient to the landmarks).
        size: chip side, pixels.
        pyramid: reduce large faces as dlib does (False: plain bilinear sampling of the full image).
        quantize: floor to 8 bits where dlib's uint8 pipeline does (pyramid levels, output); for
            reproducing dlib bit for bit; not differentiable.

    Returns:
        ``(N, 3, size, size)`` chips, same dtype and device as ``images``.

    Raises:
        ShapeError: ``images`` not ``(N, C, H, W)`` or ``matrices`` not ``(N, 2, 3)``.
    """
    m = np.asarray(matrices.detach().cpu() if isinstance(matrices, torch.Tensor) else matrices, dtype=np.float64)
    if images.ndim != 4 or m.shape != (images.shape[0], 2, 3):
        raise ShapeError(f"extract_chip(): images must be (N, C, H, W) and matrices (N, 2, 3), got "
                         f"{tuple(images.shape)} and {m.shape}")
    H, W = images.shape[-2:]
    uv = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], dtype=np.float64)
    g = np.arange(size, dtype=np.float64)
    grid_uv = np.stack(np.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    out = []
    for n in range(images.shape[0]):
        mn = m[n]
        # dlib's chip rectangle: corners `side` apart, area (side + 1)^2; rect_down halves `side`
        side = np.sqrt(abs(np.linalg.det(mn[:, :2]))) * (size - 1) / 2
        depth, grow = 0, 2.0
        while pyramid and (side + 1) ** 2 > size * size:
            side /= 2
            depth += 1
            grow = grow * 2 + 2
        corners = uv @ mn.T
        lo = np.maximum(corners.min(0) - grow, 0.0)
        hi = np.minimum(corners.max(0) + grow, [W - 1, H - 1])
        x0, y0 = (int(np.floor(v + 0.5)) for v in lo)
        x1, y1 = (int(np.floor(v + 0.5)) for v in hi)
        if x1 < x0 or y1 < y0:  # the chip lies outside the image
            out.append(images.new_zeros(images.shape[1], size, size))
            continue
        sub = images[n:n + 1, :, y0:y1 + 1, x0:x1 + 1]
        pts = grid_uv @ mn[:, :2].T + mn[:, 2] - [x0, y0]
        for _ in range(depth):
            sub = _pyramid_down(sub, quantize)
            pts = pts / 2.0 - [1.25, 0.75]  # dlib's pyramid_down<2>::point_down
        h, w = sub.shape[-2:]
        if h < 2 or w < 2:
            out.append(images.new_zeros(images.shape[1], size, size))
            continue
        valid = (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (np.floor(pts[:, 0]) + 1 < w) & (np.floor(pts[:, 1]) + 1 < h)
        gxy = torch.from_numpy(np.stack([2 * pts[:, 0] / (w - 1) - 1, 2 * pts[:, 1] / (h - 1) - 1], -1))
        gxy = gxy.to(images).view(1, size, size, 2)
        chip = F.grid_sample(sub, gxy, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        chip = chip * torch.from_numpy(valid).to(images).view(1, size, size)
        if quantize:
            chip = torch.floor(chip * 255.0 + 1e-4) / 255.0
        out.append(chip)
    return torch.stack(out)


def aligned_chip_matrix(res: int) -> np.ndarray:
    """The ``(2, 3)`` chip matrix of a ``res`` x ``res`` face aligned to recon3d's template
    (:data:`recon3d.ops.align.TEMPLATE_68`: the training faces, the generators' output): dlib's chip
    placed from the template's landmarks, so no detection is needed.

    >>> aligned_chip_matrix(64).shape
    (2, 3)
    """
    from ..ops.align import TEMPLATE_68

    return face_chip_transform(TEMPLATE_68.astype(np.float64) * res - 0.5)  # unit square -> pixel centres


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
