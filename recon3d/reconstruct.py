"""The main job: photo -> landmarks -> 3DMM fit -> completed UV texture -> textured mesh.

Each stage is a reusable library function with a typed result (``recon3d.io.load_image``,
``recon3d.detect.detect_faces``, ``recon3d.fitting.fit``, ``recon3d.texture.unwrap_texture`` /
``complete_texture``); :func:`reconstruct` composes them and returns a :class:`Reconstruction`
that can ``.save(dir, formats=...)``. The library never prints; progress is reported through
``callback(stage: str, fraction: float)``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import __version__
from .errors import NoFaceError, Recon3DError, ShapeError
from .morphable.model import MorphableModel

log = logging.getLogger(__name__)

__all__ = ["ReconstructConfig", "Reconstruction", "reconstruct", "reconstruct_all", "EXPORT_FORMATS"]

EXPORT_FORMATS = ("obj", "glb", "ply")


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
        fit: an explicit :class:`recon3d.fitting.FitConfig` (overrides ``fast``).
    """

    texture_size: int = 1024
    fast: bool = False
    photometric: bool = True
    delight: bool = False
    mirror: bool = True
    detector: str = "recon3d"
    fit: object | None = None


@dataclass(frozen=True)
class Reconstruction:
    """One reconstructed face.

    Attributes:
        image: ``(H, W, 3)`` float32 input image (EXIF-upright, RGB, [0, 1]).
        name: stem used for output files.
        image_path: source file or None.
        lmk_detected_px: ``(68, 2)`` landmarks the fit used.
        detection_method: which detector stage found the face (or ``"user"``).
        fit: the :class:`recon3d.fitting.FitResult` (batch of one).
        model: the morphable model used.
        verts_model: ``(V, 3)`` fitted vertices, model frame, metres.
        texture: ``(Ht, Wt, 3)`` completed UV texture.
        texture_visible: ``(Ht, Wt, 3)`` visible-only texture (zeros where unseen).
        texture_mask: ``(Ht, Wt)`` float visibility/confidence of ``texture_visible``.
        timings: seconds per stage.
    """

    image: torch.Tensor
    name: str
    image_path: Path | None
    lmk_detected_px: torch.Tensor
    detection_method: str
    fit: object
    model: MorphableModel
    verts_model: torch.Tensor
    texture: torch.Tensor
    texture_visible: torch.Tensor
    texture_mask: torch.Tensor
    timings: dict = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------
    @property
    def pose_deg(self) -> dict:
        ypr = self.fit.pose_deg[0].tolist()
        return {"yaw": ypr[0], "pitch": ypr[1], "roll": ypr[2]}

    def mesh(self, *, texture: str = "completed"):
        """The textured mesh (model frame, metres) as a :class:`recon3d.mesh.Mesh`."""
        from .mesh import Mesh
        from .mesh.geometry import vertex_normals

        tex = self.texture if texture == "completed" else self.texture_visible
        normals = vertex_normals(self.verts_model[None], self.model.faces)[0]
        return Mesh(verts=self.verts_model.detach().cpu().numpy(), faces=self.model.faces.cpu().numpy(),
                    uv=self.model.uv.cpu().numpy(), uv_faces=self.model.uv_faces.cpu().numpy(),
                    texture=tex.detach().cpu().numpy(), normals=normals.detach().cpu().numpy())

    def params(self) -> dict:
        """JSON-ready parameters: pose (degrees), camera, coefficients, model id, timings."""
        f = self.fit
        p = f.params
        cam = f.camera
        lmk3d = self.model.landmarks(self.verts_model[None])[0]
        return {
            "recon3d_version": __version__,
            "image_path": str(self.image_path) if self.image_path else None,
            "image_size": list(self.image.shape[:2]),
            "pose_deg": self.pose_deg,
            "camera": {"K": cam.K[0].tolist(), "R": cam.R[0].tolist(), "t": cam.t[0].tolist(),
                       "convention": "OpenCV camera frame, x_cam = R @ x_model + t, metres; K in pixels"},
            "coefficients": {"shape": p.shape[0].tolist(), "expr": p.expr[0].tolist(), "albedo": p.albedo[0].tolist(),
                             "rot_axis_angle": p.rot[0].tolist(), "trans_m": p.trans[0].tolist(),
                             "light_sh": p.light[0].tolist()},
            "landmarks_px": self.lmk_detected_px.tolist(),
            "landmarks_fitted_px": f.lmk_px[0].tolist(),
            "landmarks_model": lmk3d.tolist(),
            "detection_method": self.detection_method,
            "model": {"name": self.model.name, "version": self.model.version, "n_verts": self.model.n_verts},
            "texture_size": list(self.texture.shape[:2]),
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def overlay(self, *, alpha: float = 1.0) -> torch.Tensor:
        """The reconstruction rendered (textured) over the input photo, ``(H, W, 3)``."""
        from .render import render_mesh

        H, W = self.image.shape[:2]
        cam = self.fit.camera
        verts_cam = cam.to_cam(self.verts_model[None])
        out = render_mesh(verts_cam, self.model.faces, cam.K, (H, W),
                          texture_map=(self.model.uv, self.model.uv_faces, self.texture[None]))
        m = out.mask[0] * alpha
        return (out.image[0] * m + self.image * (1 - m)).clamp(0, 1)

    def save(self, out_dir: str | os.PathLike, *, formats: Sequence[str] = ("obj",), extras: bool = True) -> list[Path]:
        """Write the outputs into ``out_dir`` (created), atomically: files are written to a temporary
        folder next to it and moved in at the end.

        Files: ``<name>.obj/.mtl/_texture.png`` (and/or ``.glb``/``.ply``), ``<name>.json``, and with
        ``extras`` the visible-only texture and its mask, ``<name>_overlay.png``,
        ``<name>_landmarks.txt`` (68 lines "x y", 0-based pixels) and ``<name>_input.png``.
        """
        from .io import save_image
        from .mesh import save_mesh

        bad = [f for f in formats if f not in EXPORT_FORMATS]
        if bad:
            raise ValueError(f"Reconstruction.save(): unknown formats {bad}; choose from {EXPORT_FORMATS}")
        out_dir = Path(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        try:
            from concurrent.futures import ThreadPoolExecutor

            n = self.name
            mesh = self.mesh()
            files: dict[str, str] = {}
            # PNG encoding (zlib) releases the GIL: the files are written by two threads
            writes = [lambda fmt=fmt: save_mesh(tmp / f"{n}.{fmt}", mesh, format=fmt, texture_name=f"{n}_texture.png")
                      for fmt in formats]
            files.update({fmt: f"{n}.{fmt}" for fmt in formats})
            if "obj" not in formats:
                writes.append(lambda: save_image(tmp / f"{n}_texture.png", self.texture))
            files["texture"] = f"{n}_texture.png"
            if extras:
                overlay = self.overlay()
                for fname, img in ((f"{n}_texture_visible.png", self.texture_visible),
                                   (f"{n}_texture_mask.png", self.texture_mask),
                                   (f"{n}_overlay.png", overlay), (f"{n}_input.png", self.image)):
                    writes.append(lambda fname=fname, img=img: save_image(tmp / fname, img))
            with ThreadPoolExecutor(max_workers=2) as pool:
                for fut in [pool.submit(w) for w in writes]:
                    fut.result()  # re-raises the first failure
            if extras:
                np.savetxt(tmp / f"{n}_landmarks.txt", self.lmk_detected_px.cpu().numpy(), fmt="%.3f")
                files.update(texture_visible=f"{n}_texture_visible.png", texture_mask=f"{n}_texture_mask.png",
                             overlay=f"{n}_overlay.png", input=f"{n}_input.png", landmarks=f"{n}_landmarks.txt")
            params = self.params()
            params["files"] = files
            (tmp / f"{n}.json").write_text(json.dumps(params, indent=1))
            if out_dir.exists():
                shutil.rmtree(out_dir)
            tmp.replace(out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return sorted(out_dir.iterdir())


def _fit_config(cfg: ReconstructConfig, landmarks_3d: bool = False):
    from dataclasses import replace

    from .fitting import FitConfig

    if cfg.fit is not None:
        fc = cfg.fit
    else:
        fc = FitConfig.fast() if cfg.fast else FitConfig()
    if not cfg.photometric:
        fc = replace(fc, photo=False)
    if landmarks_3d:  # 3-D convention landmarks: fixed jaw points, no sliding contour
        fc = replace(fc, dynamic_contour=False)
    return fc


def _default_model(device) -> MorphableModel:
    from .morphable.default import load_default_model

    return load_default_model(device=device)


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
        ImageError: unreadable image. NoFaceError: no face found.
    """
    from .detect import detect_faces
    from .io import LoadedImage, load_image
    from .io.landmarks_file import load_landmarks

    cb = callback or (lambda stage, frac: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    loaded = image if isinstance(image, LoadedImage) else load_image(image)
    timings["load"] = time.perf_counter() - t0
    img = loaded.image
    stem = name or (loaded.path.stem if loaded.path is not None else "face")
    dev = torch.device(device) if device is not None else (model.device if model is not None else torch.device("cpu"))
    if model is None:
        model = _default_model(dev)
    else:
        model = model.to(dev)
    cb("detect", 0.05)

    t0 = time.perf_counter()
    if landmarks is not None:
        if isinstance(landmarks, (str, os.PathLike)):
            lmk = load_landmarks(landmarks)
        else:
            lmk = torch.as_tensor(np.asarray(landmarks), dtype=torch.float32)
        if lmk.shape != (68, 2):
            raise ShapeError(f"reconstruct(): landmarks must be (68, 2) pixels, got {tuple(lmk.shape)}")
        faces = [(lmk, "user", bool(landmarks_3d))]
    else:
        dets = detect_faces(img, backend=config.detector, all_faces=all_faces)
        if not dets:
            raise NoFaceError(f"no face found in {loaded.name}: no detector stage found a face")
        faces = [(d.lmk_px, d.method, d.landmarks_3d) for d in dets]
    timings["detect"] = time.perf_counter() - t0

    results = []
    for i, (lmk, method, lmk3d) in enumerate(faces):
        nm = stem if len(faces) == 1 else f"{stem}_face{i}"
        results.append(_reconstruct_one(img, loaded.path, nm, lmk, method, model, config, dev, dict(timings), cb, lmk3d))
    return results


def reconstruct(image, **kwargs) -> Reconstruction:
    """Reconstruct the largest face in ``image``; see :func:`reconstruct_all` for the arguments.

    Example (not run as a doctest: it takes seconds)::

        from skimage.data import astronaut
        rec = reconstruct(astronaut())
        rec.save("out/astronaut", formats=["obj"])
    """
    kwargs.pop("all_faces", None)
    return reconstruct_all(image, all_faces=False, **kwargs)[0]


def _reconstruct_one(img, path, name, lmk, method, model, config, dev, timings, cb, landmarks_3d=False) -> Reconstruction:
    from .conventions import opencv_to_opengl_cam
    from .fitting import fit
    from .mesh.geometry import vertex_normals
    from .render import sh_shading
    from .texture import bake_vertex_attr_to_uv, complete_texture, remove_shading, unwrap_texture, uv_raster

    fc = _fit_config(config, landmarks_3d)
    image_b = img[None].to(dev)
    lmk_b = lmk[None].to(dev, torch.float32)

    t0 = time.perf_counter()
    cb("fit", 0.1)
    res = fit(image_b, lmk_b, model=model, config=fc)
    timings["fit"] = time.perf_counter() - t0
    cb("texture", 0.7)

    t0 = time.perf_counter()
    with torch.no_grad():
        verts_model = res.verts_model.detach()
        verts_cam = res.verts_cam.detach()
        uvr = uv_raster(model, resolution=config.texture_size)
        normals_cam = vertex_normals(verts_cam, model.faces)
        unwrapped = unwrap_texture(image_b, verts_cam, model.faces, res.camera.K, uvr, normals=normals_cam)
        albedo_v = model.albedo(res.params.albedo)
        shading_v = sh_shading(opencv_to_opengl_cam(normals_cam), res.params.light)
        baked = bake_vertex_attr_to_uv(torch.cat([albedo_v.expand_as(shading_v), shading_v], -1), model.faces, uvr)
        albedo_uv, shading_uv = baked[..., :3], baked[..., 3:]
        tex_vis = unwrapped.texture
        if config.delight:
            tex_vis = remove_shading(tex_vis, shading_uv)
            target = albedo_uv
        else:
            target = (albedo_uv * shading_uv).clamp(0, 1)
        completed = complete_texture(tex_vis, unwrapped.visible, target, uvr, mirror=config.mirror, keep_visible=True)
    timings["texture"] = time.perf_counter() - t0
    cb("done", 1.0)
    return Reconstruction(
        image=img, name=name, image_path=path, lmk_detected_px=lmk.detach().cpu(), detection_method=method,
        fit=res, model=model, verts_model=verts_model[0].cpu(), texture=completed.texture[0].clamp(0, 1).cpu(),
        texture_visible=(tex_vis[0] * unwrapped.visible[0, ..., None]).clamp(0, 1).cpu(),
        texture_mask=unwrapped.confidence[0].cpu(), timings=timings,
    )


_ = Recon3DError
