"""The degradation model of blind face restoration: HQ face -> LQ training input, seeded.

Seed 002 eq. 17 (after GFP-GAN, GPEN) and seed 004 eq. 10 (after GFP-GAN) both write it as

    x = [(y ⊗ k)↓s + n_δ]_JPEG_q

blur with a kernel ``k``, downsample by ``s``, add white Gaussian noise of standard deviation ``δ``
(8-bit units), JPEG-compress at quality ``q``. As GFP-GAN and seed 002 do, the LQ image is then
resized **back to the HQ size**: the restorer's input is the size of its output. Every function
here is pure; randomness enters only through :func:`sample_params` (a ``numpy.random.Generator``)
and the noise seed it draws, so a training pair is a function of ``(seed, index)``
(:func:`pair_rng`).

Images: the primary input is a **numpy ``(H, W, 3)`` (or ``(H, W)``) array**, uint8 in ``[0, 255]``
or float in the same 8-bit scale. A uint8 input gives a uint8 output (rounded, clipped), a float
input a float32 output (not clipped), so the chain in :func:`degrade` quantises only where a real
file would (before JPEG). For NCHW tensors (a :class:`recon3d.data.faces.FaceSet`, a training batch)
use :func:`degrade_batch`, uint8 ``(N, 3, H, W)`` in and out.

* :func:`gaussian_kernel`, :func:`motion_kernel`: ``(size, size)`` float64 kernels summing to 1.
* :func:`blur` (reflect padding), :func:`downsample` / :func:`resize`, :func:`add_noise`,
  :func:`jpeg` (a PIL round trip in memory).
* :class:`DegradeParams` (what is applied), :class:`DegradePreset` (the ranges it is drawn from):
  :data:`DEGRADE_002`, :data:`DEGRADE_004`; :func:`sample_params`, :func:`degrade`,
  :func:`degrade_batch`.
* :func:`build_eval_set`: a fixed-seed evaluation set on disk (``hq/``, ``lq/``,
  ``degradations.jsonl``), atomic and resumable; its CLI is ``pipelines/make_degraded_set.py``.

Conventions: angles are in degrees, counter-clockwise as the image is displayed (x right, y down),
0 = horizontal. Resampling is PIL bilinear on float32 planes (antialiased when shrinking). Blur
padding reflects about the edge pixel without repeating it (numpy/torch ``"reflect"``, OpenCV
``BORDER_REFLECT_101``). Byte-identical output for a seed holds for one numpy / PIL / libjpeg build.

The ranges (the papers train at 512², in HQ pixels; :meth:`DegradePreset.for_res` rescales the
pixel-unit ranges to another face size):

* :data:`DEGRADE_002` (seed 002 §4.1): kernel size 41, Gaussian or motion blur, ``s`` in [0.4, 8],
  ``δ`` in [0, 25], ``q`` in [5, 50]. Seed 002 gives no blur widths: the Gaussian σ range [0.2, 10]
  is GFP-GAN's (the practice seed 002 says it follows), the motion length (1 to the kernel size, any
  angle) and the even odds of Gaussian vs motion are ours. ``s < 1`` (the paper's range taken
  literally) enlarges, then the image is resized back: only a resampling loss.
* :data:`DEGRADE_004` (seed 004 §4.1, eq. 10): Gaussian blur only; seed 004 states no ranges and
  says it follows GFP-GAN, so these are GFP-GAN's (Wang et al., CVPR 2021, §4.1): σ in [0.2, 10],
  ``r`` in [1, 8], ``δ`` in [0, 15], ``q`` in [60, 100]; kernel size 41 as in GFP-GAN's training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..errors import Recon3DError

__all__ = ["gaussian_kernel", "motion_kernel", "blur", "downsample", "resize", "lq_size", "add_noise", "jpeg",
           "DegradeParams", "DegradePreset", "DEGRADE_002", "DEGRADE_004", "PRESETS", "get_preset", "pair_rng",
           "sample_params", "kernel_of", "degrade", "degrade_batch", "build_eval_set", "EvalSetReport",
           "RECORD_VERSION", "RECORDS_FILE", "CONFIG_FILE"]

log = logging.getLogger(__name__)

#: bumped whenever what a record describes (or how it is applied) changes
RECORD_VERSION = 1
RECORDS_FILE = "degradations.jsonl"
CONFIG_FILE = "degrade_config.json"
KERNELS = ("gaussian", "motion", "none")


# ---------------------------------------------------------------------------------------------- kernels

def _check_size(size: int, who: str) -> int:
    if int(size) != size or size < 1 or size % 2 == 0:
        raise ValueError(f"{who}: size must be a positive odd integer, got {size!r}")
    return int(size)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(size, dtype=np.float64) - size // 2
    return np.meshgrid(r, -r)  # x right, y up: angles counter-clockwise as displayed


def gaussian_kernel(size: int, sigma: float, sigma_y: float | None = None, angle: float = 0.0) -> np.ndarray:
    """A ``(size, size)`` Gaussian kernel summing to 1.

    Args:
        size: odd side.
        sigma: standard deviation (pixels) along the kernel's major axis direction ``angle``.
        sigma_y: standard deviation across it (``None``: ``sigma``, isotropic).
        angle: direction of the ``sigma`` axis in degrees (counter-clockwise, 0 = horizontal).

    >>> k = gaussian_kernel(5, 1.0); k.shape, round(float(k.sum()), 12), bool(k[2, 2] == k.max())
    ((5, 5), 1.0, True)
    """
    size = _check_size(size, "gaussian_kernel()")
    sy = sigma if sigma_y is None else sigma_y
    if not (sigma > 0 and sy > 0):
        raise ValueError(f"gaussian_kernel(): sigmas must be > 0, got {sigma!r}, {sy!r}")
    x, y = _grid(size)
    a = math.radians(angle)
    u = x * math.cos(a) + y * math.sin(a)   # along the sigma axis
    v = -x * math.sin(a) + y * math.cos(a)  # across it
    k = np.exp(-0.5 * ((u / sigma) ** 2 + (v / sy) ** 2))
    return k / k.sum()


def motion_kernel(size: int, angle: float, length: float) -> np.ndarray:
    """A ``(size, size)`` linear motion kernel summing to 1: a segment of ``length`` pixels through
    the centre at ``angle`` degrees (counter-clockwise, 0 = horizontal), anti-aliased.

    A pixel's weight is a one-pixel-wide tent of its distance to the line times its (clipped)
    overlap with the segment's extent along the line, so an integer odd length at 0° or 90° is an
    exact run of pixels and other angles spread smoothly over the neighbours. Lengths longer than
    the kernel are cut at its border.

    >>> motion_kernel(5, 0.0, 3.0)[2].tolist(), float(motion_kernel(5, 0.0, 3.0)[[0, 1, 3, 4]].sum())
    ([0.0, 0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 0.0], 0.0)
    """
    size = _check_size(size, "motion_kernel()")
    if not length >= 0:
        raise ValueError(f"motion_kernel(): length must be >= 0, got {length!r}")
    x, y = _grid(size)
    a = math.radians(angle)
    along = x * math.cos(a) + y * math.sin(a)
    across = -x * math.sin(a) + y * math.cos(a)
    k = np.clip(1.0 - np.abs(across), 0.0, 1.0) * np.clip(length / 2.0 + 0.5 - np.abs(along), 0.0, 1.0)
    if k.sum() <= 0:  # cannot happen for the centre pixel, kept as a guard
        k[size // 2, size // 2] = 1.0
    return k / k.sum()


# ---------------------------------------------------------------------------------------------- operations

def _as_float(img: np.ndarray, who: str) -> tuple[np.ndarray, bool]:
    a = np.asarray(img)
    if a.ndim not in (2, 3):
        raise ValueError(f"{who}: expected an (H, W) or (H, W, C) image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32), True
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{who}: expected uint8 or float (8-bit scale), got {a.dtype}")
    return a.astype(np.float32, copy=False), False


def _back(a: np.ndarray, was_uint8: bool) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8) if was_uint8 else a.astype(np.float32, copy=False)


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with ``kernel`` (odd-sided), reflect padding (edge pixel not repeated),
    same size out. uint8 in -> uint8 out, float in -> float32 out."""
    from scipy.signal import fftconvolve

    a, u8 = _as_float(img, "blur()")
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"blur(): kernel must be 2-D with odd sides, got shape {k.shape}")
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    planes = a[..., None] if a.ndim == 2 else a
    padded = np.pad(planes.astype(np.float64), ((ph, ph), (pw, pw), (0, 0)), mode="reflect")
    out = fftconvolve(padded, k[..., None], mode="valid", axes=(0, 1))
    out = out[..., 0] if a.ndim == 2 else out
    return _back(out, u8)


def lq_size(hw: Sequence[int], scale: float) -> tuple[int, int]:
    """The LQ size of an ``(H, W)`` image downsampled by ``scale``: ``round(H / scale)``, at least 1.

    >>> lq_size((128, 128), 4.0), lq_size((128, 96), 0.5), lq_size((8, 8), 100.0)
    ((32, 32), (256, 192), (1, 1))
    """
    if not scale > 0:
        raise ValueError(f"lq_size(): scale must be > 0, got {scale!r}")
    return max(1, int(round(hw[0] / scale))), max(1, int(round(hw[1] / scale)))


def resize(img: np.ndarray, hw: Sequence[int]) -> np.ndarray:
    """Resize to ``(h, w)`` with PIL bilinear on float32 planes (antialiased when shrinking)."""
    a, u8 = _as_float(img, "resize()")
    h, w = int(hw[0]), int(hw[1])
    if (h, w) == a.shape[:2]:
        return _back(a.copy(), u8)
    planes = a[..., None] if a.ndim == 2 else a
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32))
                               .resize((w, h), Image.Resampling.BILINEAR)) for c in range(planes.shape[2])], axis=-1)
    return _back(out[..., 0] if a.ndim == 2 else out, u8)


def downsample(img: np.ndarray, scale: float, *, back: bool = True) -> tuple[np.ndarray, tuple[int, int]]:
    """Downsample by ``scale`` to :func:`lq_size`, and (``back=True``) resize back to the input size,
    as the restoration input is (GFP-GAN, seed 002: the LQ face enters the network at HQ size).

    Returns:
        ``(image, (h, w))``: the image at the input size (``back``) or at the LQ size, and the LQ size.
    """
    a = np.asarray(img)
    hw = lq_size(a.shape[:2], scale)
    small = resize(a, hw)
    return (resize(small, a.shape[:2]) if back else small), hw


def add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator | int, *, gray: bool = False) -> np.ndarray:
    """Add white Gaussian noise of standard deviation ``sigma`` (8-bit units); ``gray``: one noise
    plane shared by the channels (luminance noise), else independent per channel (colour noise).
    ``rng``: a ``numpy.random.Generator`` or a seed."""
    a, u8 = _as_float(img, "add_noise()")
    if not sigma >= 0:
        raise ValueError(f"add_noise(): sigma must be >= 0, got {sigma!r}")
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    shape = (a.shape[:2] + ((1,) if a.ndim == 3 else ())) if gray else a.shape
    out = a.astype(np.float64) + g.normal(0.0, sigma, shape) if sigma > 0 else a
    return _back(out, u8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` (1-100) and decode again, in memory (PIL, default 4:2:0 chroma
    subsampling). Float input is rounded and clipped first; always returns uint8."""
    if int(quality) != quality or not 1 <= quality <= 100:
        raise ValueError(f"jpeg(): quality must be an integer in [1, 100], got {quality!r}")
    a, u8 = _as_float(img, "jpeg()")
    a8 = _back(a, True)
    buf = io.BytesIO()
    Image.fromarray(a8).save(buf, format="JPEG", quality=int(quality), optimize=False)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("L" if a8.ndim == 2 else "RGB")).copy()


# ---------------------------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class DegradeParams:
    """One degradation, fully explicit: :func:`degrade` is a pure function of ``(image, params)``.

    Attributes:
        kernel: ``"gaussian"``, ``"motion"`` or ``"none"``.
        kernel_size: odd side of the kernel.
        sigma_x, sigma_y, angle: the Gaussian (``sigma_x`` along ``angle`` degrees, ``sigma_y``
            across; equal: isotropic); for ``"motion"`` ``angle`` is the direction of motion.
        length: the motion length in pixels (``"motion"`` only).
        scale: the downsampling factor ``s`` (LQ size = HQ size / s).
        noise_sigma: ``δ``, 8-bit units (0: none).
        gray_noise: one noise plane for all channels.
        noise_seed: the seed of the noise.
        jpeg_quality: ``q`` (``None``: no JPEG).
    """

    kernel: str = "none"
    kernel_size: int = 41
    sigma_x: float = 1.0
    sigma_y: float = 1.0
    angle: float = 0.0
    length: float = 0.0
    scale: float = 1.0
    noise_sigma: float = 0.0
    gray_noise: bool = False
    noise_seed: int = 0
    jpeg_quality: int | None = None

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"DegradeParams: kernel must be one of {KERNELS}, got {self.kernel!r}")
        _check_size(self.kernel_size, "DegradeParams")
        if not (self.sigma_x > 0 and self.sigma_y > 0 and self.length >= 0 and self.scale > 0
                and self.noise_sigma >= 0 and 0 <= self.noise_seed < 2**64):
            raise ValueError(f"DegradeParams: out of range: {self}")
        if self.jpeg_quality is not None and not (int(self.jpeg_quality) == self.jpeg_quality
                                                  and 1 <= self.jpeg_quality <= 100):
            raise ValueError(f"DegradeParams: jpeg_quality must be in [1, 100] or None, got {self.jpeg_quality!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DegradeParams":
        """The params of a :meth:`to_dict` or of a :func:`degrade` record (extra keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class DegradePreset:
    """The ranges :func:`sample_params` draws from (uniformly; ``(lo, hi)`` inclusive).

    Attributes:
        name: the preset's name (``"002"``, ``"004"``).
        kernel_size: odd sizes ``(lo, hi)``; an odd size is drawn.
        p_motion: probability of a motion kernel (else Gaussian).
        sigma: Gaussian σ range (pixels of the HQ image).
        p_anisotropic: probability that a Gaussian gets an independent ``sigma_y`` and a random angle.
        motion_length: motion length range (pixels), cut at the kernel size.
        scale: downsampling factor range.
        noise_sigma: noise σ range (8-bit units).
        p_gray_noise: probability of gray (luminance) noise.
        jpeg_quality: JPEG quality range (integers).
        source: where the ranges come from.
    """

    name: str
    kernel_size: tuple[int, int] = (41, 41)
    p_motion: float = 0.0
    sigma: tuple[float, float] = (0.2, 10.0)
    p_anisotropic: float = 0.0
    motion_length: tuple[float, float] = (1.0, 41.0)
    scale: tuple[float, float] = (1.0, 8.0)
    noise_sigma: tuple[float, float] = (0.0, 15.0)
    p_gray_noise: float = 0.0
    jpeg_quality: tuple[int, int] = (60, 100)
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        lo, hi = self.kernel_size
        ok = (lo % 2 == 1 and hi % 2 == 1 and 1 <= lo <= hi and 0 < self.sigma[0] <= self.sigma[1]
              and 0 <= self.motion_length[0] <= self.motion_length[1] and 0 < self.scale[0] <= self.scale[1]
              and 0 <= self.noise_sigma[0] <= self.noise_sigma[1]
              and 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100
              and all(0 <= p <= 1 for p in (self.p_motion, self.p_anisotropic, self.p_gray_noise)))
        if not ok:
            raise ValueError(f"DegradePreset {self.name!r}: inconsistent ranges")

    def for_res(self, res: int, paper_res: int = 512) -> "DegradePreset":
        """The preset with its pixel-unit ranges (σ, motion length, kernel size) scaled by
        ``res / paper_res``, so a 128² face gets the blur a 512² face got in the paper (ratios:
        scale, noise, quality, unchanged). Kernel sizes stay odd and >= 3."""
        f = res / paper_res

        def odd(n: float) -> int:
            return max(3, int(round(n)) // 2 * 2 + 1)

        return dataclasses.replace(
            self, name=f"{self.name}@{res}", kernel_size=(odd(self.kernel_size[0] * f), odd(self.kernel_size[1] * f)),
            sigma=(self.sigma[0] * f, self.sigma[1] * f),
            motion_length=(self.motion_length[0] * f, self.motion_length[1] * f))


#: seed 002 §4.1 eq. 17 (see the module docstring for what the paper leaves open)
DEGRADE_002 = DegradePreset(
    name="002", kernel_size=(41, 41), p_motion=0.5, sigma=(0.2, 10.0), motion_length=(1.0, 41.0),
    scale=(0.4, 8.0), noise_sigma=(0.0, 25.0), jpeg_quality=(5, 50),
    source="seed 002 §4.1 eq. 17: k 41 (Gaussian and motion), s [0.4, 8], δ [0, 25], q [5, 50]; "
           "σ [0.2, 10] from GFP-GAN; motion length and p_motion ours")
#: seed 004 §4.1 eq. 10, with GFP-GAN's ranges (seed 004 states none)
DEGRADE_004 = DegradePreset(
    name="004", kernel_size=(41, 41), p_motion=0.0, sigma=(0.2, 10.0), scale=(1.0, 8.0),
    noise_sigma=(0.0, 15.0), jpeg_quality=(60, 100),
    source="seed 004 §4.1 eq. 10 (Gaussian k_σ), ranges of GFP-GAN (Wang et al. 2021 §4.1): "
           "σ [0.2, 10], r [1, 8], δ [0, 15], q [60, 100]")
PRESETS = {"002": DEGRADE_002, "004": DEGRADE_004}


def get_preset(preset: str | DegradePreset) -> DegradePreset:
    if isinstance(preset, DegradePreset):
        return preset
    try:
        return PRESETS[str(preset)]
    except KeyError:
        raise ValueError(f"unknown degradation preset {preset!r}; choose from {sorted(PRESETS)}") from None


def pair_rng(seed: int, index: int | str) -> np.random.Generator:
    """The generator of training pair ``index`` (an int, or a name hashed with SHA-256) of ``seed``:
    independent streams per pair, the same for a ``(seed, index)`` whatever else is drawn."""
    if isinstance(index, str):
        index = int.from_bytes(hashlib.sha256(index.encode("utf-8")).digest()[:8], "little")
    if seed < 0 or index < 0:
        raise ValueError(f"pair_rng(): seed and index must be >= 0, got {seed!r}, {index!r}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(index)])))


def sample_params(preset: str | DegradePreset, rng: np.random.Generator) -> DegradeParams:
    """Draw one :class:`DegradeParams` from ``preset``'s ranges. The same variates are drawn in the
    same order whatever the branch (and whatever the preset), so a generator state always gives the
    same params."""
    p = get_preset(preset)
    u = rng.random(8)
    size = 2 * int(rng.integers(p.kernel_size[0] // 2, p.kernel_size[1] // 2 + 1)) + 1
    quality = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
    noise_seed = int(rng.integers(0, 2**63))

    def lerp(r: tuple[float, float], t: float) -> float:
        return float(r[0] + (r[1] - r[0]) * t)

    motion = bool(u[0] < p.p_motion)
    sx = lerp(p.sigma, u[1])
    aniso = bool(u[2] < p.p_anisotropic)
    sy = lerp(p.sigma, u[3]) if aniso and not motion else sx
    angle = float(180.0 * u[4]) if (motion or aniso) else 0.0
    length = min(lerp(p.motion_length, u[1]), float(size)) if motion else 0.0
    return DegradeParams(kernel="motion" if motion else "gaussian", kernel_size=size, sigma_x=sx, sigma_y=sy,
                         angle=angle, length=length, scale=lerp(p.scale, u[5]),
                         noise_sigma=lerp(p.noise_sigma, u[6]), gray_noise=bool(u[7] < p.p_gray_noise),
                         noise_seed=noise_seed, jpeg_quality=quality)


def kernel_of(params: DegradeParams) -> np.ndarray | None:
    """The blur kernel of ``params`` (``None`` for ``kernel="none"``)."""
    if params.kernel == "gaussian":
        return gaussian_kernel(params.kernel_size, params.sigma_x, params.sigma_y, params.angle)
    if params.kernel == "motion":
        return motion_kernel(params.kernel_size, params.angle, params.length)
    return None


def _record(params: DegradeParams, hw: Sequence[int], resized_back: bool) -> dict[str, Any]:
    return {"version": RECORD_VERSION, **params.to_dict(), "hq_size": [int(hw[0]), int(hw[1])],
            "lq_size": list(lq_size(hw, params.scale)), "resized_back": bool(resized_back),
            "order": ["blur", "downsample", "noise", "quantize", "jpeg"] + (["resize_back"] if resized_back else [])}


def degrade(img: np.ndarray, params: DegradeParams, *, resize_back: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply ``x = [(y ⊗ k)↓s + n_δ]_JPEG_q`` to a uint8 ``(H, W, 3)`` (or ``(H, W)``) image.

    Blur at HQ size, downsample to the LQ size, add noise there, quantise to uint8, JPEG, then
    (``resize_back``, the default) resize back to ``(H, W)``: the restoration input.

    Returns:
        ``(lq, record)``: uint8 at HQ size (or at the LQ size), and a JSON-able dict of what was
        applied (the params, ``hq_size``, ``lq_size``, ``resized_back``, ``order``, ``version``);
        ``DegradeParams.from_dict(record)`` gives the params back.
    """
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim not in (2, 3):
        raise ValueError(f"degrade(): expected a uint8 (H, W) or (H, W, C) image, got {a.dtype} {a.shape}")
    x = a.astype(np.float32)
    k = kernel_of(params)
    if k is not None:
        x = blur(x, k)
    x, _ = downsample(x, params.scale, back=False)
    if params.noise_sigma > 0:
        x = add_noise(x, params.noise_sigma, np.random.default_rng(params.noise_seed), gray=params.gray_noise)
    x8 = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if params.jpeg_quality is not None:
        x8 = jpeg(x8, params.jpeg_quality)
    if resize_back:
        x8 = resize(x8, a.shape[:2])
    return x8, _record(params, a.shape[:2], resize_back)


def degrade_batch(images, seed: int, indices: Sequence[int], preset: str | DegradePreset = "002"):
    """Degrade an NCHW uint8 tensor (a training batch): image ``i`` with the params of
    ``pair_rng(seed, indices[i])``, resized back to the HQ size.

    Returns:
        ``(lq, records)``: uint8 ``(N, C, H, W)`` tensor on the input's device, one record per image.
    """
    import torch

    if images.dtype != torch.uint8 or images.ndim != 4 or len(indices) != images.shape[0]:
        raise ValueError(f"degrade_batch(): expected uint8 (N, C, H, W) and N indices, got "
                         f"{images.dtype} {tuple(images.shape)} and {len(indices)} indices")
    hwc = images.detach().cpu().permute(0, 2, 3, 1).numpy()
    out, records = np.empty_like(hwc), []
    for i, idx in enumerate(indices):
        params = sample_params(preset, pair_rng(seed, int(idx)))
        lq, rec = degrade(hwc[i] if hwc.shape[-1] != 1 else hwc[i, ..., 0], params)
        out[i] = lq.reshape(out[i].shape)
        records.append({"index": int(idx), "seed": int(seed), **rec})
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(images.device), records


# ---------------------------------------------------------------------------------------------- evaluation set

@dataclass
class EvalSetReport:
    """What :func:`build_eval_set` did."""

    out_dir: Path
    n_written: int
    n_skipped: int
    records: Path
    skipped_inputs: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.n_written + self.n_skipped


def _names(paths: Sequence[str]) -> list[str]:
    """File names for relative photo paths: the path without suffix, ``/`` -> ``__``; where two
    photos would share a name (``a.jpg``, ``a.png``) their suffix is kept (``a_jpg``)."""
    base = [Path(p).with_suffix("").as_posix().replace("/", "__") for p in paths]
    counts: dict[str, int] = {}
    for b in base:
        counts[b] = counts.get(b, 0) + 1
    return [b if counts[b] == 1 else Path(p).as_posix().replace("/", "__").replace(".", "_")
            for b, p in zip(base, paths, strict=True)]


def same_settings(cfg_path: Path, config: dict) -> bool:
    """Whether a resumable build may continue: no ``cfg_path`` yet, or it holds exactly ``config`` (an
    unreadable file counts as different)."""
    if not cfg_path.is_file():
        return True
    try:
        return json.loads(cfg_path.read_text(encoding="utf-8")) == config
    except (OSError, ValueError):
        return False


def build_eval_set(src_dir: str | os.PathLike, out_dir: str | os.PathLike, n: int | None = None, seed: int = 0,
                   preset: str | DegradePreset = "002", res: int = 128, *, split: str = "val",
                   val_percent: float = 5.0, cache_dir: str | os.PathLike | None = None, align: str = "auto",
                   progress: bool = False) -> EvalSetReport:
    """Write a fixed-seed evaluation set of ``(HQ, LQ)`` pairs.

    The faces are read with :func:`recon3d.data.faces.load_faces` (``split`` of ``src_dir``, at
    ``res``, the first ``n`` by sorted path); face ``NAME`` is degraded with the params of
    ``pair_rng(seed, NAME)`` (so a face's degradation does not depend on which other faces are in
    the set) and written as ``out_dir/hq/NAME.png`` and ``out_dir/lq/NAME.png`` (atomically,
    :func:`recon3d.io.image.save_image`), LQ resized back to ``res``. ``out_dir/degradations.jsonl``
    (one record per face, in order: ``name``, ``key``, ``hq``, ``lq``, ``seed``, ``preset`` and the
    :func:`degrade` record) is rewritten atomically at the end; ``out_dir/degrade_config.json``
    holds the settings.

    Resumable: a face whose two PNGs exist is skipped (its record is recomputed: it depends on the
    seed alone). Deterministic: the same seed and settings give byte-identical files.

    Raises:
        Recon3DError: ``out_dir`` holds a set made with other settings, no face could be read, or a
            write failed.
        ValueError: bad ``n``, ``seed``, ``res`` or ``preset``.
    """
    from ..io.atomic import atomic_file, check_output_dir, clean_stale_temps
    from ..io.image import save_image
    from .faces import load_faces

    p = get_preset(preset)
    if n is not None and (int(n) != n or n < 1):
        raise ValueError(f"build_eval_set(): n must be >= 1 or None, got {n!r}")
    if int(seed) != seed or not 0 <= seed < 2**63:
        raise ValueError(f"build_eval_set(): seed must be an integer in [0, 2**63), got {seed!r}")
    out = check_output_dir(Path(out_dir).expanduser())
    src = Path(src_dir).expanduser().resolve()
    config = {"version": RECORD_VERSION, "source": str(src), "seed": int(seed), "preset": dataclasses.asdict(p),
              "res": int(res), "split": split, "val_percent": float(val_percent), "align": align}
    config = json.loads(json.dumps(config))  # tuples as lists: comparable with the file
    cfg_path = out / CONFIG_FILE
    if not same_settings(cfg_path, config):
        raise Recon3DError(f"build_eval_set(): {out} holds a set made with other settings ({cfg_path}); "
                           "use another output folder or the same settings")
    fs = load_faces(src, res, split=split, val_percent=val_percent, cache_dir=cache_dir, align=align, limit=n,
                    progress=progress)
    hq_dir, lq_dir = out / "hq", out / "lq"
    for d in (hq_dir, lq_dir):
        d.mkdir(exist_ok=True)
        clean_stale_temps(d)
    with atomic_file(cfg_path, "w") as fh:
        json.dump(config, fh, indent=1, sort_keys=True)

    names = _names(fs.paths)
    records, written, skipped = [], 0, 0
    from tqdm import tqdm

    for i in tqdm(range(len(names)), desc=f"degrade {p.name}", unit="img", disable=not progress):
        name = names[i]
        params = sample_params(p, pair_rng(seed, name))
        hq_path, lq_path = hq_dir / f"{name}.png", lq_dir / f"{name}.png"
        if hq_path.is_file() and lq_path.is_file():
            rec = _record(params, (fs.res, fs.res), True)
            skipped += 1
        else:
            hq = fs.images[i].permute(1, 2, 0).numpy()
            lq, rec = degrade(hq, params)
            try:
                save_image(hq_path, hq)
                save_image(lq_path, lq)
            except Recon3DError as e:
                raise Recon3DError(f"build_eval_set(): {e}") from None
            written += 1
        records.append({"name": name, "key": fs.keys[i], "hq": f"hq/{name}.png", "lq": f"lq/{name}.png",
                        "seed": int(seed), "preset": p.name, **rec})
    rec_path = out / RECORDS_FILE
    with atomic_file(rec_path, "w") as fh:
        for r in records:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    log.info("build_eval_set(): %d pairs written, %d already there -> %s", written, skipped, out)
    return EvalSetReport(out, written, skipped, rec_path, list(fs.skipped))
