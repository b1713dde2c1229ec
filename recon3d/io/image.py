"""Image loading and saving with strict, explicit error handling.

:func:`load_image` turns anything PIL can read (or an in-memory array) into recon3d's image
convention: an ``(H, W, 3)`` float32 RGB tensor in ``[0, 1]``, row 0 at the top (see
``recon3d/conventions.py``). Normalisation rules:

* EXIF orientation is applied (``PIL.ImageOps.exif_transpose``), so the tensor is upright as a
  viewer would show it; ``LoadedImage.exif_transposed`` says whether a rotation/flip happened.
* Grayscale (``1``, ``L``, ``I``, ``I;16*``, ``F``) is replicated to three channels.
* 16-bit data (``I;16``, ``I;16B``, ``I`` holding 16-bit PNG values) is scaled by ``1/65535``.
  Pillow decodes 16-bit *RGB* PNGs to 8-bit RGB itself, so those lose the low byte (< 1/255).
* ``F`` (float) images are clipped to ``[0, 1]``.
* Alpha (``RGBA``, ``LA``, ``PA``, palette images with transparency) is **composited on white**:
  ``rgb * a + (1 - a)``. Transparent backgrounds (e.g. cut-out portraits) thus look like a plain
  white studio background, which face detectors handle better than black.
* Any other mode (``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``P``) goes through ``Image.convert("RGB")``.

Decompression bombs are refused *before* decoding: the header's width x height is compared with
``max_pixels`` right after ``Image.open`` (which reads only the header). Pillow's own
``DecompressionBombError`` (raised at ``2 * Image.MAX_IMAGE_PIXELS``) is mapped to
:class:`~recon3d.errors.ImageError` as well.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError
from .atomic import atomic_file

__all__ = ["LoadedImage", "load_image", "save_image", "to_uint8", "DEFAULT_MAX_PIXELS", "batch_to_uint8", "contact_sheet",
           "save_gif"]

log = logging.getLogger(__name__)

#: Default limit on ``width * height`` accepted by :func:`load_image` (50 megapixels).
DEFAULT_MAX_PIXELS = 50_000_000
#: zlib level of the PNGs recon3d writes: 1 encodes a 1024² texture about 4x faster than PIL's
#: default 6 (63 vs 275 ms) for files about 13 % larger.
PNG_COMPRESS_LEVEL = 1

_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class LoadedImage:
    """An image in recon3d's convention plus where it came from.

    Attributes:
        image: ``(H, W, 3)`` float32 RGB tensor in ``[0, 1]``, row 0 at the top, EXIF-upright.
        path: the source file, or ``None`` for bytes/arrays.
        original_mode: the PIL mode of the file (``"RGB"``, ``"I;16"``, ...) or
            ``"array:<dtype>"`` for in-memory arrays.
        exif_transposed: ``True`` when an EXIF orientation other than 1 was applied.
        size: ``(H, W)`` of ``image`` (after the EXIF transpose).
    """

    image: torch.Tensor
    path: Path | None
    original_mode: str
    exif_transposed: bool
    size: tuple[int, int]

    @property
    def name(self) -> str:
        """A short name for messages: the file name, or ``"<array>"``/``"<bytes>"``."""
        return self.path.name if self.path is not None else f"<{self.original_mode.split(':')[0]}>"


def _describe(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"<{len(src)} bytes>"
    return f"<{type(src).__name__}>"


def load_image(
    src: str | os.PathLike | bytes | bytearray | np.ndarray | torch.Tensor,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Load an image file, encoded bytes or an array into recon3d's image convention.

    Args:
        src: a path, the encoded file content (``bytes``), or an array/tensor ``(H, W)``,
            ``(H, W, 1|3|4)`` of dtype uint8 (0..255), uint16 (0..65535) or float (``[0, 1]``,
            clipped). Arrays are taken as RGB(A), row 0 on top, with no EXIF.
        max_pixels: refuse images with more than this many pixels (checked from the header,
            before decoding).

    Returns:
        A :class:`LoadedImage` whose ``image`` is ``(H, W, 3)`` float32 in ``[0, 1]``.

    Raises:
        ImageError: the file is missing, a directory, empty, not an image, truncated or corrupt,
            or larger than ``max_pixels``; the message names the file and the problem.

    >>> li = load_image(np.full((2, 3), 255, dtype=np.uint8))
    >>> li.size, li.image.shape, float(li.image.min())
    ((2, 3), torch.Size([2, 3, 3]), 1.0)
    """
    if max_pixels <= 0:
        raise ValueError(f"load_image(): max_pixels must be > 0, got {max_pixels}")
    if isinstance(src, (np.ndarray, torch.Tensor)):
        return _load_array(src, max_pixels)
    name = _describe(src)
    path: Path | None = None
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise ImageError(f"load_image(): {name}: file not found")
        if path.is_dir():
            raise ImageError(f"load_image(): {name}: is a directory, expected an image file")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageError(f"load_image(): {name}: cannot read file ({e})") from e
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        raise ImageError(
            f"load_image(): expected a path, bytes or an (H, W[, C]) array, got {type(src).__name__}"
        )
    if len(data) == 0:
        raise ImageError(f"load_image(): {name}: empty file (0 bytes)")
    pil, mode, transposed = _decode(data, name, max_pixels)
    img = _pil_to_tensor(pil, name)
    return LoadedImage(
        image=img,
        path=path,
        original_mode=mode,
        exif_transposed=transposed,
        size=(img.shape[0], img.shape[1]),
    )


def _decode(data: bytes, name: str, max_pixels: int) -> tuple[Image.Image, str, bool]:
    """Open (header only), check the size, then decode fully and apply EXIF orientation."""
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS; our own max_pixels check is the policy.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageError(f"load_image(): {name}: refused, image too large (decompression bomb?): {e}") from e
    except UnidentifiedImageError as e:
        raise ImageError(
            f"load_image(): {name}: not an image or an unsupported format ({len(data)} bytes, "
            f"starts with {data[:8]!r})"
        ) from e
    except Exception as e:  # corrupt headers raise SyntaxError, struct.error, ValueError, ...
        raise ImageError(f"load_image(): {name}: corrupt image header ({type(e).__name__}: {e})") from e
    w, h = pil.size
    if w <= 0 or h <= 0:
        raise ImageError(f"load_image(): {name}: invalid image size {w}x{h}")
    if w * h > max_pixels:
        raise ImageError(
            f"load_image(): {name}: refused, {w}x{h} = {w * h} pixels exceeds max_pixels={max_pixels} "
            "(checked from the header, nothing decoded; raise the limit with max_pixels= or --max-pixels if intended)"
        )
    mode = pil.mode
    n_frames = int(getattr(pil, "n_frames", 1) or 1)
    if n_frames > 1:
        log.warning("load_image(): %s has %d frames/pages (animated or multi-page file); using the first one",
                    name, n_frames)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil.load()
            orientation = int(pil.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            transposed = orientation in (2, 3, 4, 5, 6, 7, 8)
            if transposed:
                pil = ImageOps.exif_transpose(pil)
    except Image.DecompressionBombError as e:
        raise ImageError(f"load_image(): {name}: refused, image too large (decompression bomb?): {e}") from e
    except Exception as e:  # truncated data: OSError; broken zlib streams: zlib.error, SyntaxError ...
        raise ImageError(
            f"load_image(): {name}: truncated or corrupt {pil.format or 'image'} data ({type(e).__name__}: {e})"
        ) from e
    return pil, mode, transposed


def _pil_to_tensor(pil: Image.Image, name: str) -> torch.Tensor:
    mode = pil.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(pil).astype(np.float64)
        if mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
            log.warning("load_image(): %s: 32-bit integer image outside 0..65535; clipping", name)
        rgb = np.repeat((np.clip(arr, 0, 65535) / 65535.0)[..., None], 3, axis=-1)
    elif mode == "F":
        arr = np.asarray(pil).astype(np.float64)
        rgb = np.repeat(np.clip(arr, 0.0, 1.0)[..., None], 3, axis=-1)
    elif (
        mode in ("RGBA", "LA", "PA")
        or (mode == "P" and "transparency" in pil.info)
        or (mode in ("RGB", "L") and "transparency" in pil.info)
    ):
        rgba = np.asarray(pil.convert("RGBA")).astype(np.float64) / 255.0
        rgb = _composite_on_white(rgba)
    elif mode == "RGB":
        rgb = np.asarray(pil).astype(np.float64) / 255.0
    elif mode in ("L", "1"):
        arr = np.asarray(pil.convert("L")).astype(np.float64) / 255.0
        rgb = np.repeat(arr[..., None], 3, axis=-1)
    else:  # CMYK, YCbCr, LAB, HSV, P without transparency, ...
        try:
            rgb = np.asarray(pil.convert("RGB")).astype(np.float64) / 255.0
        except Exception as e:
            raise ImageError(f"load_image(): {name}: cannot convert mode {mode} to RGB ({e})") from e
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:4]
    return rgba[..., :3] * a + (1.0 - a)


def _load_array(arr: np.ndarray | torch.Tensor, max_pixels: int) -> LoadedImage:
    if isinstance(arr, torch.Tensor):
        dtype_name = str(arr.dtype).replace("torch.", "")
        a = arr.detach().cpu().numpy()
    else:
        dtype_name = str(arr.dtype)
        a = arr
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))):
        raise ImageError(
            f"load_image(): array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {a.shape}"
        )
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        raise ImageError(f"load_image(): array image is empty, shape {a.shape}")
    if h * w > max_pixels:
        raise ImageError(f"load_image(): array of {w}x{h} pixels exceeds max_pixels={max_pixels}")
    if a.dtype == np.uint8:
        f = a.astype(np.float64) / 255.0
    elif a.dtype == np.uint16:
        f = a.astype(np.float64) / 65535.0
    elif a.dtype == np.bool_:
        f = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError("load_image(): float array image contains NaN or Inf")
        f = np.clip(a.astype(np.float64), 0.0, 1.0)
    else:
        raise ImageError(f"load_image(): array dtype must be uint8, uint16, bool or float, got {a.dtype}")
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=-1)
    elif f.shape[-1] == 4:
        f = _composite_on_white(f)
    img = torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32))
    return LoadedImage(
        image=img, path=None, original_mode=f"array:{dtype_name}", exif_transposed=False, size=(h, w)
    )


def to_uint8(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` image to uint8 (rounded, clipped); a leading batch of 1 is dropped.

    Args:
        img: ``(H, W)``, ``(H, W, C)`` or ``(1, H, W, C)`` float in ``[0, 1]``, or already uint8.

    Returns:
        ``(H, W[, C])`` uint8 numpy array.

    >>> to_uint8(torch.tensor([[0.0, 0.5, 1.2]])).tolist()
    [[0, 128, 255]]
    """
    a = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ImageError(f"to_uint8(): expected a single image, got a batch of shape {a.shape}")
        a = a[0]
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return np.round(a.astype(np.float64) / 257.0).astype(np.uint8)
    return np.round(np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def save_image(path: str | os.PathLike, img: torch.Tensor | np.ndarray, *, quality: int = 95) -> Path:
    """Write an image atomically (temporary file in the same folder, then ``os.replace``).

    The format follows the suffix (``.png``, ``.jpg``, ...). A half-written file never appears
    under ``path``, even if the process is killed mid-write.

    Args:
        path: destination file; its folder must exist.
        img: ``(H, W)``, ``(H, W, 1|3|4)`` or ``(1, H, W, C)`` float in ``[0, 1]`` or uint8.
        quality: JPEG/WebP quality.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImageError: unknown suffix, bad shape, or the write failed.
    """
    path = Path(path)
    a = to_uint8(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))):
        raise ImageError(f"save_image(): {path}: image must be (H, W) or (H, W, 1|3|4), got {a.shape}")
    ext = path.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ImageError(f"save_image(): {path}: unknown image suffix {ext!r}")
    pil = Image.fromarray(a)
    if fmt == "JPEG" and pil.mode == "RGBA":
        pil = pil.convert("RGB")
    if not path.parent.is_dir():
        raise ImageError(f"save_image(): {path}: folder {path.parent} does not exist")
    try:
        with atomic_file(path) as fh:
            kw = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
            if fmt == "PNG":
                kw = {"compress_level": PNG_COMPRESS_LEVEL}
            pil.save(fh, format=fmt, **kw)
    except Exception as e:
        raise ImageError(f"save_image(): {path}: write failed ({type(e).__name__}: {e})") from e
    return path


def batch_to_uint8(images: torch.Tensor) -> np.ndarray:
    """A batch of network images ``(N, 3, H, W)`` in ``[-1, 1]`` as ``(N, H, W, 3)`` uint8.

    >>> batch_to_uint8(torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)).tolist()
    [[[[0, 128, 255]]]]
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ImageError(f"batch_to_uint8(): expected (N, 3, H, W), got {tuple(images.shape)}")
    x = (images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def contact_sheet(images: np.ndarray, ncol: int, gap: int = 2) -> np.ndarray:
    """Tile ``(N, H, W, 3)`` uint8 images row by row, ``ncol`` per row, with white ``gap``-pixel borders.

    >>> contact_sheet(np.zeros((3, 4, 4, 3), np.uint8), 2).shape
    (14, 14, 3)
    """
    n, h, w, c = images.shape
    rows = -(-n // ncol)
    sheet = np.full((rows * (h + gap) + gap, ncol * (w + gap) + gap, c), 255, np.uint8)
    for i in range(n):
        r, k = divmod(i, ncol)
        sheet[gap + r * (h + gap):gap + r * (h + gap) + h, gap + k * (w + gap):gap + k * (w + gap) + w] = images[i]
    return sheet


def save_gif(path: str | os.PathLike, frames: np.ndarray, *, fps: float = 12.0, scale: int = 1) -> Path:
    """Write ``(N, H, W, 3)`` uint8 frames as a looping GIF, atomically (each frame enlarged ``scale`` x,
    nearest neighbour)."""
    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ImageError(f"save_gif(): {path}: frames must be (N, H, W, 3), got {frames.shape}")
    if not path.parent.is_dir():
        raise ImageError(f"save_gif(): {path}: folder {path.parent} does not exist")
    ims = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in frames]
    with atomic_file(path) as fh:
        ims[0].save(fh, format="GIF", save_all=True, append_images=ims[1:], duration=round(1000 / fps), loop=0)
    return path
