"""Face restoration of photos: every face aligned to the template, restored by a network, pasted back.

:func:`restore` finds every face of a photo with the detector chain (:func:`recon3d.detect.detect_faces`,
dlib's 68 landmarks by default: the landmarks :data:`recon3d.ops.align.TEMPLATE_68` was measured
with), aligns each onto the template (:func:`recon3d.ops.align.align_face`) at the network's side, or
at a multiple of it when the face is bigger in the output, restores it
(:func:`recon3d.nn.restoration.restore_aligned`), matches its colours to the photo's face (mean and
standard deviation per channel inside the paste mask) and warps it back with the inverse similarity,
pasted through a feathered disc (the aligned square's inscribed disc, its outer quarter faded). The
background is enlarged by ``scale`` with PIL's bicubic filter; the faces are pasted at that scale.
With ``aligned=True`` the input is already a template-aligned face crop (GFPGAN's convention):
no detection, the result is the restored crop at ``scale`` times its size.

A ``reference`` photo of the same person (detected and aligned the same way) drives the
reference-guided model (:data:`recon3d.nn.restoration.REF_SR`). The identity cosine between each
aligned input face and its restoration (:func:`recon3d.nn.identity.embed_aligned`, dlib's descriptor)
is recorded per face when dlib's model files are installed.

:func:`restore_view` / :func:`restore_views` restore views rendered by :mod:`recon3d.edit.rotate` at the
landmarks of the rotated mesh (no detection, so turned heads are found too): ``rotate --restore``.
:func:`restore_photo` restores a photo before reconstruction: ``reconstruct --restore`` unwraps the
texture from the restored photo.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..camera import project_points
from ..detect import detect_faces
from ..errors import AssetError, ImageError, NoFaceError, Recon3DError, ShapeError
from ..io import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from ..io.image import to_uint8
from ..nn.restoration import load_restorer, restore_aligned
from ..ops.align import TEMPLATE_68, align_face, similarity_transform
from ..reconstruct import _check_image_size
from ._common import check_rec, fit_camera, model_of, to_numpy

log = logging.getLogger(__name__)

__all__ = ["RestoredFace", "RestoreResult", "restore", "restore_photo", "restore_view", "restore_views", "MAX_SCALE", "paste_mask"]

#: largest ``scale`` of :func:`restore`
MAX_SCALE = 8
#: a face is aligned at most at this multiple of the network's side
_MAX_MULTIPLE = 8
#: the outer fraction of the paste disc's radius over which the restored face fades out
_FEATHER = 0.25


@dataclass(frozen=True)
class RestoredFace:
    """One restored face.

    Attributes:
        box_xyxy: ``(4,)`` float32 detector box ``[x0, y0, x1, y1]``, input pixels (the landmarks' box
            for given landmarks; the whole crop with ``aligned=True``).
        lmk_px: ``(68, 2)`` float32 landmarks it was aligned with, input pixels.
        method: the detector stage (``"hog"``, ...), ``"landmarks"`` or ``"aligned"``.
        work_res: side of the aligned face that was restored (the network's side or a multiple).
        paste_box_xyxy: ``(4,)`` int64 box of the output pixels the restored face changed (output
            pixels, end-exclusive).
        identity_cosine: cosine of dlib's identity descriptors of the aligned input face and of its
            restoration (None when dlib's model is not installed or ``identity=False``).
    """

    box_xyxy: np.ndarray
    lmk_px: np.ndarray
    method: str
    work_res: int
    paste_box_xyxy: np.ndarray
    identity_cosine: float | None = None


@dataclass(frozen=True)
class RestoreResult:
    """The restored photo.

    Attributes:
        image: ``(H * scale, W * scale, 3)`` uint8 RGB.
        faces: the restored faces, largest first.
        scale: the enlargement.
        aligned: the input was an aligned face crop.
        reference: a reference photo was given to a reference-guided model.
        net_res: the network's face side.
        timings: seconds per stage (``load``, ``detect``, ``restore``, ``identity``, ``paste``).
    """

    image: np.ndarray
    faces: tuple[RestoredFace, ...]
    scale: int
    aligned: bool
    reference: bool
    net_res: int
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-able record of the faces (boxes, landmarks rounded to 0.01 px, identity cosines)."""
        return {"scale": self.scale, "aligned": self.aligned, "reference": self.reference, "net_res": self.net_res,
                "size": [int(self.image.shape[1]), int(self.image.shape[0])],
                "faces": [{"box_xyxy": np.round(f.box_xyxy, 2).tolist(), "method": f.method, "work_res": f.work_res,
                           "paste_box_xyxy": f.paste_box_xyxy.tolist(), "identity_cosine": f.identity_cosine,
                           "lmk_px": np.round(f.lmk_px, 2).tolist()} for f in self.faces],
                "timings": {k: round(v, 4) for k, v in self.timings.items()}}


def paste_mask(res: int) -> np.ndarray:
    """The ``(res, res)`` float32 paste weight of an aligned face: 1 inside the square's inscribed
    disc out to ``1 - 0.25`` of its radius, then a smoothstep down to 0 at the disc's edge.

    >>> m = paste_mask(64); float(m[32, 32]), float(m[0, 0]), float(m[32, 0]) < 0.05
    (1.0, 0.0, True)
    """
    c = (np.arange(res, dtype=np.float64) + 0.5) / res - 0.5
    d = np.sqrt(c[None, :] ** 2 + c[:, None] ** 2) / 0.5
    t = np.clip((1.0 - d) / _FEATHER, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _to_pm1(u8_chw: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(u8_chw)).float().div(127.5).sub(1.0)


def _load(image, max_pixels: int) -> LoadedImage:
    return image if isinstance(image, LoadedImage) else load_image(image, max_pixels=max_pixels)


def _landmark_list(landmarks) -> list[np.ndarray]:
    a = to_numpy(landmarks)
    a = a.astype(np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (68, 2) or not np.isfinite(a).all():
        raise ShapeError(f"restore(): landmarks must be finite (68, 2) or (N, 68, 2) pixels, got {a.shape}")
    return list(a)


def _faces_of(loaded: LoadedImage, landmarks, detector: str, what: str) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """``(box, lmk, method)`` per face, largest first."""
    if landmarks is not None:
        out = [(np.concatenate([lm.min(0), lm.max(0)]), lm, "landmarks") for lm in _landmark_list(landmarks)]
    else:
        dets = detect_faces(loaded.image, backend=detector, all_faces=True)
        out = [(to_numpy(d.box_xyxy).astype(np.float64), to_numpy(d.lmk_px).astype(np.float64), d.method) for d in dets]
    if not out:
        raise NoFaceError(f"no face found in {what}{loaded.name}: no detector stage found a face")
    return out


def _work_res(lmk: np.ndarray, scale: int, net_res: int) -> tuple[int, np.ndarray]:
    """The aligned side for a face (the network's, or the multiple that covers the face at the output
    scale) and the similarity from input pixels (continuous) to that aligned square."""
    m1 = similarity_transform(lmk + 0.5, TEMPLATE_68.astype(np.float64))  # input -> unit square
    side_out = scale / math.sqrt(abs(np.linalg.det(m1[:2, :2])))  # the unit square's side in output pixels
    k = int(min(max(1, math.ceil(side_out / net_res - 1e-6)), _MAX_MULTIPLE))
    res = k * net_res
    return res, similarity_transform(lmk + 0.5, TEMPLATE_68.astype(np.float64) * res)


def _inside(m: np.ndarray, res: int, h: int, w: int) -> np.ndarray:
    """``(res, res)`` bool: aligned pixels whose centre comes from inside the ``h x w`` photo."""
    inv = np.linalg.inv(m)
    c = np.arange(res, dtype=np.float64) + 0.5
    x = inv[0, 0] * c[None, :] + inv[0, 1] * c[:, None] + inv[0, 2]
    y = inv[1, 0] * c[None, :] + inv[1, 1] * c[:, None] + inv[1, 2]
    return (x >= 0) & (x <= w) & (y >= 0) & (y <= h)


def _match_colours(restored: torch.Tensor, source: torch.Tensor, weight: np.ndarray) -> torch.Tensor:
    """``restored`` ``(3, R, R)`` with the per-channel mean and standard deviation of ``source`` inside
    ``weight`` (the ratio of deviations clamped to [0.5, 2])."""
    w = torch.from_numpy(weight).to(restored)
    if float(w.sum()) < 16:
        return restored
    n = w.sum()
    mu_r, mu_s = (restored * w).sum((1, 2)) / n, (source * w).sum((1, 2)) / n
    sd_r = (((restored - mu_r[:, None, None]) ** 2 * w).sum((1, 2)) / n).sqrt()
    sd_s = (((source - mu_s[:, None, None]) ** 2 * w).sum((1, 2)) / n).sqrt()
    gain = (sd_s / sd_r.clamp(min=1e-4)).clamp(0.5, 2.0)
    return ((restored - mu_r[:, None, None]) * gain[:, None, None] + mu_s[:, None, None]).clamp(-1, 1)


def _paste(canvas: np.ndarray, face: torch.Tensor, mask: np.ndarray, m_out: np.ndarray) -> np.ndarray:
    """Blend ``face`` ``(3, R, R)`` in [-1, 1] into ``canvas`` ``(Ho, Wo, 3)`` float32 [0, 1] in place
    through ``mask``; ``m_out`` maps output pixels (continuous) to the aligned square. Returns the
    changed box ``[x0, y0, x1, y1]``."""
    res = face.shape[-1]
    Ho, Wo = canvas.shape[:2]
    inv = np.linalg.inv(m_out)
    corners = inv @ np.array([[0, res, 0, res], [0, 0, res, res], [1, 1, 1, 1]], np.float64)
    x0, y0 = max(0, int(np.floor(corners[0].min()))), max(0, int(np.floor(corners[1].min())))
    x1, y1 = min(Wo, int(np.ceil(corners[0].max()))), min(Ho, int(np.ceil(corners[1].max())))
    if x1 <= x0 or y1 <= y0:
        return np.zeros(4, np.int64)
    xs, ys = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
    u = m_out[0, 0] * xs + m_out[0, 1] * ys + m_out[0, 2]
    v = m_out[1, 0] * xs + m_out[1, 1] * ys + m_out[1, 2]
    grid = torch.from_numpy(np.stack([2 * u / res - 1, 2 * v / res - 1], -1)[None]).float()
    rgb = F.grid_sample((torch.from_numpy(to_numpy(face[None].float())) + 1) / 2, grid, mode="bicubic", align_corners=False)[0].clamp(0, 1)
    a = F.grid_sample(torch.from_numpy(mask)[None, None], grid, mode="bilinear", align_corners=False)[0, 0]
    a = to_numpy(a.clamp(0, 1))[..., None]
    patch = canvas[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1] = patch * (1 - a) + to_numpy(rgb.permute(1, 2, 0)) * a
    ys_on, xs_on = np.nonzero(a[..., 0] > 0)
    if len(xs_on) == 0:
        return np.zeros(4, np.int64)
    return np.array([x0 + xs_on.min(), y0 + ys_on.min(), x0 + xs_on.max() + 1, y0 + ys_on.max() + 1], np.int64)


def _identity_cosines(pairs: list[tuple[torch.Tensor, torch.Tensor]], device) -> list[float | None]:
    """Cosine of dlib's descriptors for each ``(input, restored)`` aligned pair (None without dlib's model)."""
    from ..nn.identity import embed_aligned, load_identity_net

    try:
        net = load_identity_net(device=device)
    except AssetError as e:
        warnings.warn(f"restore(): no identity cosine ({e})", stacklevel=3)
        return [None] * len(pairs)
    out: list[float | None] = []
    for a, b in pairs:
        e = embed_aligned(torch.cat([a[None], b[None]]).float(), net)
        out.append(float(e[0] @ e[1] / max(np.linalg.norm(e[0]) * np.linalg.norm(e[1]), 1e-12)))
    return out


def _reference_face(reference, aligned: bool, detector: str, max_pixels: int, res: int) -> torch.Tensor:
    """The reference photo as one aligned face ``(1, 3, S, S)`` in [-1, 1]."""
    ref = _load(reference, max_pixels)
    u8 = to_uint8(ref.image)
    if aligned:
        if u8.shape[0] != u8.shape[1]:
            raise ImageError(f"restore(): the aligned reference {ref.name} must be square, got "
                             f"{u8.shape[1]}x{u8.shape[0]}")
        return _to_pm1(u8.transpose(2, 0, 1))[None]
    _, lmk, _ = _faces_of(ref, None, detector, "the reference ")[0]
    return _to_pm1(align_face(u8, lmk, res))[None]


def _load_net(weights, reference: bool, device):
    net = load_restorer(weights, reference=reference, device=device)
    if reference and not net.uses_reference:
        raise Recon3DError(f"restore(): the restorer {weights} takes no reference photo; drop the reference "
                           "or give reference-guided weights")
    return net


def restore(image, reference=None, *, scale: int = 1, weights: str | os.PathLike | None = None,
            aligned: bool = False, device: str | torch.device | None = None, landmarks=None,
            detector: str = "dlib", identity: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> RestoreResult:
    """Restore every face of a photo (or one aligned face crop).

    Args:
        image: a path, encoded bytes, an ``(H, W, 3)`` array/tensor or a ``LoadedImage``.
        reference: a photo of the same person (same kinds as ``image``; an aligned crop with
            ``aligned=True``) for the reference-guided model.
        scale: enlargement of the whole output, 1 to :data:`MAX_SCALE`.
        weights: a restorer safetensors file (:func:`recon3d.nn.restoration.load_restorer`);
            default: the shipped blind restorer, or the reference-guided one with ``reference``.
        aligned: ``image`` is a template-aligned face crop (square): no detection, the output is the
            restored crop at ``scale`` times its size.
        device: where the networks run (default CPU).
        landmarks: ``(68, 2)`` or ``(N, 68, 2)`` landmarks (input pixels) of the faces: skips detection.
        detector: the detector backend (:func:`recon3d.detect.detect_faces`; default ``"dlib"``).
        identity: record each face's identity cosine (dlib's descriptor; skipped with a warning when
            dlib's model files are missing).
        max_pixels: refuse larger images (:func:`recon3d.io.load_image`).

    Returns:
        :class:`RestoreResult`.

    Raises:
        ImageError: unreadable image; a photo smaller than 32 px a side or too elongated; an aligned
            crop that is not square. NoFaceError: no face in the photo (or in the reference).
        AssetError: missing or bad ``weights``. Recon3DError: a reference for a model that takes none.
        ValueError: ``scale`` out of range.
    """
    if not isinstance(scale, int) or not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"restore(): scale must be an integer in [1, {MAX_SCALE}], got {scale!r}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    loaded = _load(image, max_pixels)
    u8 = to_uint8(loaded.image)
    H, W = u8.shape[:2]
    if not aligned:
        _check_image_size(H, W, loaded.name)
    net = _load_net(weights, reference is not None, device)
    dev = next(net.parameters()).device
    timings["load"] = time.perf_counter() - t0
    if aligned:
        return _restore_aligned_crop(net, loaded, u8, reference, scale, detector, identity, max_pixels, timings)

    t0 = time.perf_counter()
    faces = _faces_of(loaded, landmarks, detector, "")
    ref = None if reference is None else _reference_face(reference, False, detector, max_pixels, net.res)
    timings["detect"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    work = []  # (box, lmk, method, res, similarity, aligned input, restored and colour-matched)
    for box, lmk, method in faces:
        res, m = _work_res(lmk, scale, net.res)
        x = _to_pm1(align_face(u8, lmk, res))
        y = torch.from_numpy(to_numpy(restore_aligned(net, x[None].to(dev), None if ref is None else ref.to(dev))[0].float()))
        weight = paste_mask(res) * _inside(m, res, H, W)
        work.append((box, lmk, method, res, m, x, _match_colours(y, x, weight)))
    timings["restore"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cos = _identity_cosines([(w[5], w[6]) for w in work], dev) if identity else [None] * len(work)
    timings["identity"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    base = Image.fromarray(u8)
    if scale > 1:
        base = base.resize((W * scale, H * scale), Image.BICUBIC)
    canvas = np.asarray(base, np.float32) / 255.0
    out_faces = []
    to_in = np.diag([1.0 / scale, 1.0 / scale, 1.0])
    for (box, lmk, method, res, m, _, y), c in zip(reversed(work), reversed(cos), strict=True):  # largest on top
        pbox = _paste(canvas, y, paste_mask(res), m @ to_in)
        out_faces.append(RestoredFace(np.asarray(box, np.float32), np.asarray(lmk, np.float32), method, res, pbox, c))
    timings["paste"] = time.perf_counter() - t0
    log.debug("restore(): %d face(s) of %s, timings %s", len(out_faces), loaded.name, timings)
    return RestoreResult(image=to_uint8(canvas), faces=tuple(reversed(out_faces)), scale=scale, aligned=False,
                         reference=ref is not None, net_res=net.res, timings=timings)


def _restore_aligned_crop(net, loaded, u8, reference, scale, detector, identity, max_pixels, timings) -> RestoreResult:
    H, W = u8.shape[:2]
    if H != W or H < 8:
        raise ImageError(f"restore(): an aligned face crop must be square and at least 8 px, got {W}x{H} "
                         f"({loaded.name})")
    dev = next(net.parameters()).device
    t0 = time.perf_counter()
    ref = None if reference is None else _reference_face(reference, True, detector, max_pixels, net.res)
    x = _to_pm1(u8.transpose(2, 0, 1))[None]
    if scale > 1:  # enlarge first, so the network's output is resized once
        x = F.interpolate(x, size=(H * scale, W * scale), mode="bicubic", align_corners=False).clamp(-1, 1)
    y = torch.from_numpy(to_numpy(restore_aligned(net, x.to(dev), None if ref is None else ref.to(dev)).float()))
    timings["restore"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cos = _identity_cosines([(x[0], y[0])], dev)[0] if identity else None
    timings["identity"] = time.perf_counter() - t0
    face = RestoredFace(np.array([0, 0, W, H], np.float32), (TEMPLATE_68 * H - 0.5).astype(np.float32), "aligned",
                        int(x.shape[-1]), np.array([0, 0, W * scale, H * scale], np.int64), cos)
    img = to_numpy((y[0].permute(1, 2, 0) + 1) / 2)
    return RestoreResult(image=to_uint8(img), faces=(face,), scale=scale, aligned=True, reference=ref is not None,
                         net_res=net.res, timings=timings)


def restore_photo(image, *, weights: str | os.PathLike | None = None, device: str | torch.device | None = None,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """``image`` with every face restored (:func:`restore`, scale 1, no identity check), as a
    :class:`recon3d.io.LoadedImage` that keeps the file's path and name, ready for
    :func:`recon3d.reconstruct.reconstruct` (``reconstruct --restore``: the texture is unwrapped from the
    restored photo)."""
    loaded = _load(image, max_pixels)
    r = restore(loaded, weights=weights, device=device, identity=False, max_pixels=max_pixels)
    img = torch.from_numpy(r.image.astype(np.float32) / 255.0)
    return LoadedImage(image=img, path=loaded.path, original_mode=loaded.original_mode,
                       exif_transposed=loaded.exif_transposed, size=loaded.size)


def restore_view(rec, view, *, weights: str | os.PathLike | None = None, device: str | torch.device | None = None,
                 identity: bool = False) -> RestoreResult:
    """Restore the face of a re-posed view (:class:`recon3d.edit.rotate.RotateResult` of ``rec``) at the
    projected landmarks of its rotated mesh (``rotate --restore``: refine after rendering).

    Raises:
        TypeError: ``rec`` is not a Reconstruction. See :func:`restore` for the rest.
    """
    check_rec("restore_view()", rec)
    K = fit_camera(rec)[0]
    m = model_of(rec)
    with torch.no_grad():
        lmk = project_points(m.landmarks(view.verts_cam[None].to(K)), K)[0]
    return restore(to_numpy(view.image), weights=weights, device=device, landmarks=lmk, identity=identity)


def restore_views(rec, views, *, weights: str | os.PathLike | None = None,
                  device: str | torch.device | None = None) -> list:
    """:func:`restore_view` of each view: the same :class:`recon3d.edit.rotate.RotateResult` objects with
    ``image`` replaced by the restored one (float in [0, 1], on the device and dtype of the view's image)."""
    out = []
    for v in views:
        img = torch.from_numpy(restore_view(rec, v, weights=weights, device=device).image.astype(np.float32) / 255.0)
        out.append(replace(v, image=img.to(v.image)))
    return out
