"""The main job: photo -> landmarks -> 3DMM fit -> completed UV texture -> textured mesh.

Each stage is a reusable library function with a typed result (``recon3d.io.load_image``,
``recon3d.detect.detect_faces``, ``recon3d.fitting.fit``, ``recon3d.texture.from_fit.texture_from_fit``);
:func:`reconstruct` composes them and returns a :class:`~recon3d.structures.Reconstruction` that can
``.save(dir, formats=...)`` (:func:`save_reconstruction`: the overlay rendered here, the folder written by
:mod:`recon3d.io.export`). The library never prints; progress is reported through
``callback(stage: str, fraction: float)``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ._checks import check_device
from .detect import detect_faces
from .errors import ImageError, NoFaceError
from .fitting import FitConfig, fit
from .io import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from .io.export import EXPORT_FORMATS, check_export_formats, write_reconstruction
from .io.landmarks_file import check_landmarks, load_landmarks
from .morphable.default import load_default_model
from .morphable.model import MorphableModel
from .render import render_mesh
from .structures.reconstruction import Reconstruction
from .texture import uv_raster
from .texture.from_fit import texture_from_fit
from .texture.learned import DEFAULT_TEXTURE_METHOD, TEXTURE_METHODS

log = logging.getLogger(__name__)

__all__ = ["ReconstructConfig", "Reconstruction", "reconstruct", "reconstruct_all", "render_overlay",
           "save_reconstruction", "EXPORT_FORMATS"]


@dataclass(frozen=True)
class ReconstructConfig:
    """Settings of :func:`reconstruct` (frozen; pass explicitly).

    Attributes:
        texture_size: side of the square UV texture (texels).
        fast: use the fast fitting preset (fewer photometric iterations).
        photometric: run the analysis-by-synthesis stage (off: landmark fit only).
        delight: divide the fitted shading out of the texture (albedo-like texture).
        mirror: mirror visible texels into missing symmetric texels before Poisson blending.
        detector: landmark backend (default ``"recon3d"``: dlib's detector chain, then recon3d's
            large-pose regressor; ``"dlib"``: dlib's frontal predictor; ``"face_alignment"``; see
            :mod:`recon3d.detect`).
        detector_stages: the detector chain's stages (default ``None``:
            :data:`recon3d.detect.DEFAULT_STAGES`, MTCNN last, for faces behind masks, sunglasses or
            hands; :data:`recon3d.detect.CHAIN_V1_STAGES` is the chain without MTCNN).
        regressor: the ``"recon3d"`` backend's landmark regressor: a shipped version
            (:data:`recon3d.nn.landmarks.REGRESSOR_VERSIONS`, e.g. ``"v1"``) or a weights file;
            default ``None``: the shipped default.
        fit: an explicit :class:`recon3d.fitting.FitConfig` (overrides ``fast``).
        fit_init_pose: where the landmark fit's rotation starts: ``"landmarks"`` (closed-form pose
            from the landmarks) or ``"regressor"`` (the landmark regressor's pose head, when the
            detector backend gives one; otherwise the closed form).
        max_pixels: refuse larger images (:func:`recon3d.io.load_image`).
        texture_method: how the unseen texels are completed: ``"poisson"`` (mirror + Poisson blending into the
            fitted 3DMM albedo) or ``"net"`` (the learned UV generator corrects that completion,
            :mod:`recon3d.texture.learned`).
        uv_generator: the UV generator's weights file for ``"net"`` (default: the shipped one).
    """

    texture_size: int = 1024
    fast: bool = False
    photometric: bool = True
    delight: bool = False
    mirror: bool = True
    detector: str = "recon3d"
    detector_stages: tuple[str, ...] | None = None
    regressor: str | None = None
    fit: FitConfig | None = None
    fit_init_pose: str = "landmarks"
    max_pixels: int = DEFAULT_MAX_PIXELS
    texture_method: str = DEFAULT_TEXTURE_METHOD
    uv_generator: str | None = None

    def __post_init__(self):
        if self.texture_method not in TEXTURE_METHODS:
            raise ValueError(f"ReconstructConfig: texture_method must be one of {', '.join(TEXTURE_METHODS)}, "
                             f"got {self.texture_method!r}")
        if self.fit_init_pose not in ("landmarks", "regressor"):
            raise ValueError(f"ReconstructConfig: fit_init_pose must be 'landmarks' or 'regressor', "
                             f"got {self.fit_init_pose!r}")


#: Images smaller than this (either side, pixels) or more elongated than MAX_ASPECT are refused
#: before detection (detectors fail on them with obscure errors).
MIN_IMAGE_SIDE = 32
MAX_ASPECT = 20.0


def _check_image_size(h: int, w: int, name: str) -> None:
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ImageError(f"{name}: image of {w}x{h} pixels is too small to hold a face "
                         f"(each side must be at least {MIN_IMAGE_SIDE} px)")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise ImageError(f"{name}: image of {w}x{h} pixels is too elongated (aspect ratio above {MAX_ASPECT:g}:1); "
                         "crop it around the face")


def render_overlay(rec: Reconstruction, *, alpha: float = 1.0) -> torch.Tensor:
    """The reconstruction rendered (textured) over the input photo, ``(H, W, 3)``."""
    H, W = rec.image.shape[:2]
    cam = rec.fit.camera
    verts_cam = cam.to_cam(rec.verts_model[None])
    out = render_mesh(verts_cam, rec.model.faces, cam.K, (H, W),
                      texture_map=(rec.model.uv, rec.model.uv_faces, rec.texture[None]))
    m = out.mask[0] * alpha
    return (out.image[0] * m + rec.image * (1 - m)).clamp(0, 1)


def save_reconstruction(rec: Reconstruction, out_dir: str | os.PathLike, *, formats: Sequence[str] = ("obj",),
                        extras: bool = True, batch: dict | None = None) -> list[Path]:
    """Write the output folder of ``rec`` (:func:`recon3d.io.export.write_reconstruction`, atomic), with
    the overlay of :func:`render_overlay` among the ``extras``.

    Files: ``<name>.obj/.mtl/_texture.png`` (and/or ``.glb``/``.ply``), ``<name>.json``, and with
    ``extras`` the visible-only texture and its mask, ``<name>_overlay.png``,
    ``<name>_landmarks.txt`` (68 lines "x y", 0-based pixels) and ``<name>_input.png``; ``batch``
    is recorded in the JSON (the batch job, for ``--resume``).
    """
    check_export_formats(formats)  # before the overlay is rendered
    overlay = render_overlay(rec) if extras else None
    return write_reconstruction(rec, out_dir, formats=formats, extras=extras, overlay=overlay, batch=batch)


def _fit_config(cfg: ReconstructConfig, landmarks_3d: bool = False) -> FitConfig:
    if cfg.fit is not None:
        fc = cfg.fit
    else:
        fc = FitConfig.fast() if cfg.fast else FitConfig()
    if not cfg.photometric:
        fc = replace(fc, photo=False)
    if landmarks_3d:  # 3-D convention landmarks: fixed jaw points, no sliding contour
        fc = replace(fc, dynamic_contour=False)
    return fc


@dataclass(frozen=True)
class _Face:
    """One face to reconstruct from an image: its landmarks and where they came from."""

    lmk_px: torch.Tensor
    method: str
    landmarks_3d: bool
    name: str
    pose_deg: torch.Tensor | None = None


@dataclass(frozen=True)
class _Job:
    """What every face of one image shares."""

    image: torch.Tensor
    path: Path | None
    model: MorphableModel
    config: ReconstructConfig
    device: torch.device
    timings: dict[str, float]
    callback: Callable[[str, float], None]


def _frontal_layout(model: MorphableModel) -> np.ndarray:
    """The model's 68 landmarks of the mean face seen from the front, as image-like ``(68, 2)`` (y down)."""
    with torch.no_grad():
        lm = model.landmarks(model.mean[None])[0, :, :2].detach().cpu().double().numpy()
    return lm * np.array([1.0, -1.0])


def reconstruct_all(
    image,
    *,
    model: MorphableModel | None = None,
    landmarks: torch.Tensor | np.ndarray | str | os.PathLike | None = None,
    landmarks_3d: bool = False,
    config: ReconstructConfig = ReconstructConfig(),
    all_faces: bool = False,
    device: str | torch.device | None = None,
    name: str | None = None,
    callback: Callable[[str, float], None] | None = None,
) -> list[Reconstruction]:
    """Reconstruct the largest face (or every face with ``all_faces``) of one image.

    Args:
        image: a path, encoded bytes, an ``(H, W, 3)`` array/tensor or a ``LoadedImage``.
        model: a :class:`MorphableModel` (default: the shipped ``recon3d_face_v1``).
        landmarks: user-supplied 68 landmarks (``(68, 2)`` pixels, or a ``.pts``/``.txt``/``.npy``
            file): skips detection.
        landmarks_3d: the supplied landmarks follow the 3-D convention (AFLW2000-3D, the
            ``recon3d`` backend): fit them with fixed jaw points instead of the sliding contour.
        config: :class:`ReconstructConfig`.
        all_faces: reconstruct every detected face (largest first).
        device: torch device for fitting (default CPU, or the model's device).
        name: stem for output files (default: the file's stem, else ``"face"``).
        callback: ``callback(stage, fraction)`` progress hook.

    Raises:
        ImageError: unreadable image, or smaller than ``MIN_IMAGE_SIDE`` / more elongated than
            ``MAX_ASPECT``. NoFaceError: no face found. LandmarkFileError: user ``landmarks`` that are
            not 68 real finite points on the image in iBUG-68 order
            (:func:`recon3d.io.landmarks_file.check_landmarks`). Recon3DError: an absent ``device``.
    """
    cb = callback or (lambda stage, frac: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    loaded = image if isinstance(image, LoadedImage) else load_image(image, max_pixels=config.max_pixels)
    timings["load"] = time.perf_counter() - t0
    img = loaded.image
    _check_image_size(int(img.shape[0]), int(img.shape[1]), loaded.name)
    stem = name or (loaded.path.stem if loaded.path is not None else "face")
    dev = check_device(device) if device is not None else (model.device if model is not None else torch.device("cpu"))
    if model is None:
        model = load_default_model(device=dev)
    else:
        model = model.to(dev)
    cb("detect", 0.05)

    t0 = time.perf_counter()
    if landmarks is not None:
        where = str(landmarks) if isinstance(landmarks, (str, os.PathLike)) else "reconstruct(): landmarks"
        raw = load_landmarks(landmarks) if isinstance(landmarks, (str, os.PathLike)) else landmarks
        lmk = check_landmarks(raw, (int(img.shape[0]), int(img.shape[1])), template=_frontal_layout(model),
                              where=where)
        faces = [(lmk, "user", bool(landmarks_3d), None)]
    else:
        dets = detect_faces(img, backend=config.detector, all_faces=all_faces, stages=config.detector_stages,
                            regressor=config.regressor)
        if not dets:
            raise NoFaceError(f"no face found in {loaded.name}: no detector stage found a face")
        faces = [(d.lmk_px, d.method, d.landmarks_3d, d.pose_deg) for d in dets]
    timings["detect"] = time.perf_counter() - t0

    job = _Job(image=img, path=loaded.path, model=model, config=config, device=dev, timings=timings, callback=cb)
    return [_reconstruct_one(job, _Face(lmk, method, lmk3d, stem if len(faces) == 1 else f"{stem}_face{i}", pose))
            for i, (lmk, method, lmk3d, pose) in enumerate(faces)]


def reconstruct(
    image,
    *,
    config: ReconstructConfig = ReconstructConfig(),
    model: MorphableModel | None = None,
    device: str | torch.device | None = None,
    landmarks: torch.Tensor | np.ndarray | str | os.PathLike | None = None,
    landmarks_3d: bool = False,
    name: str | None = None,
    callback: Callable[[str, float], None] | None = None,
) -> Reconstruction:
    """Reconstruct the largest face in ``image``; see :func:`reconstruct_all` for the arguments.

    Example (not run as a doctest: it takes seconds)::

        from skimage.data import astronaut
        rec = reconstruct(astronaut())
        save_reconstruction(rec, "out/astronaut", formats=["obj"])
    """
    return reconstruct_all(image, model=model, landmarks=landmarks, landmarks_3d=landmarks_3d, config=config,
                           all_faces=False, device=device, name=name, callback=callback)[0]


def _uv_generator(config: ReconstructConfig, device):
    """The UV generator of ``config`` (None for the classical completion), on ``device``."""
    if config.texture_method != "net":
        return None
    from .nn.uv_generator import load_uv_generator

    return load_uv_generator(config.uv_generator, device=device)


def _reconstruct_one(job: _Job, face: _Face) -> Reconstruction:
    model, config, cb = job.model, job.config, job.callback
    timings = dict(job.timings)
    fc = _fit_config(config, face.landmarks_3d)
    image_b = job.image[None].to(job.device)
    lmk_b = face.lmk_px[None].to(job.device, torch.float32)

    t0 = time.perf_counter()
    cb("fit", 0.1)
    init_pose = None
    if config.fit_init_pose == "regressor" and face.pose_deg is not None:
        init_pose = face.pose_deg.reshape(1, 3).to(job.device, torch.float32)
    res = fit(image_b, lmk_b, model=model, config=fc, init_pose_deg=init_pose)
    timings["fit"] = time.perf_counter() - t0
    cb("texture", 0.7)

    t0 = time.perf_counter()
    with torch.no_grad():
        verts_model = res.verts_model.detach()
        uvr = uv_raster(model, resolution=config.texture_size)
        tex = texture_from_fit(image_b, res.verts_cam.detach(), model.faces, res.camera.K, uvr,
                               albedo_v=model.albedo(res.params.albedo), light=res.params.light,
                               delight=config.delight, mirror=config.mirror, method=config.texture_method,
                               uv_generator=_uv_generator(config, job.device))
    timings["texture"] = time.perf_counter() - t0
    cb("done", 1.0)
    return Reconstruction(
        image=job.image, name=face.name, image_path=job.path, lmk_detected_px=face.lmk_px.detach().cpu(),
        detection_method=face.method, fit=res, model=model, verts_model=verts_model[0].cpu(),
        texture=tex.texture[0].clamp(0, 1).cpu(),
        texture_visible=(tex.texture_visible[0] * tex.visible[0, ..., None]).clamp(0, 1).cpu(),
        texture_mask=tex.confidence[0].cpu(), timings=timings,
    )
