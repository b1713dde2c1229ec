"""The reconstruction output folder, written and read in one place.

``OUT/<name>/`` holds ``<name>.obj`` + ``.mtl`` + ``<name>_texture.png`` (and/or ``.glb`` / ``.ply``),
``<name>.json`` (parameters, and ``files``: role -> file name of everything written) and, with
``extras``, ``<name>_texture_visible.png``, ``<name>_texture_mask.png``, ``<name>_overlay.png``,
``<name>_input.png`` and ``<name>_landmarks.txt`` (68 lines "x y", 0-based pixels).

* :func:`write_reconstruction` writes it atomically (a temporary sibling folder, swapped in at the end);
* :func:`read_export` reads it back (:class:`ExportedFace`: the files found and the parsed JSON), for
  the viewer and for ``--resume`` (:meth:`ExportedFace.is_complete`, :func:`is_exported`);
* :func:`reconstruction_mesh` and :func:`reconstruction_params` are the mesh and the JSON content.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .._version import __version__
from ..errors import Recon3DError
from ..ops.geometry import vertex_normals
from ..structures.mesh import Mesh
from ..structures.reconstruction import Reconstruction
from .atomic import atomic_dir
from .image import save_image
from .mesh import save_mesh

__all__ = ["EXPORT_FORMATS", "ExportedFace", "export_file_names", "write_reconstruction", "read_export",
           "is_exported", "is_job_exported", "reconstruction_mesh", "reconstruction_params"]

#: Mesh formats of the output folder.
EXPORT_FORMATS = ("obj", "glb", "ply")
_MESH_SUFFIXES = tuple(f".{f}" for f in EXPORT_FORMATS)
_EXTRAS = {"texture_visible": "_texture_visible.png", "texture_mask": "_texture_mask.png",
           "overlay": "_overlay.png", "input": "_input.png", "landmarks": "_landmarks.txt"}


def export_file_names(name: str, formats: Sequence[str] = EXPORT_FORMATS, *, extras: bool = True) -> dict[str, str]:
    """Role -> file name of the output folder of ``name`` (the JSON's ``files``; the JSON itself is
    ``<name>.json``).

    >>> export_file_names("a", ["obj"], extras=False)
    {'obj': 'a.obj', 'texture': 'a_texture.png'}
    """
    files = {fmt: f"{name}.{fmt}" for fmt in formats}
    files["texture"] = f"{name}_texture.png"
    if extras:
        files.update({role: f"{name}{suffix}" for role, suffix in _EXTRAS.items()})
    return files


def reconstruction_mesh(rec: Reconstruction, *, texture: str = "completed") -> Mesh:
    """The textured mesh of ``rec`` (model frame, metres, vertex normals); ``texture="visible"`` uses
    the visible-only texture."""
    tex = rec.texture if texture == "completed" else rec.texture_visible
    normals = vertex_normals(rec.verts_model[None], rec.model.faces)[0]
    return Mesh(verts=rec.verts_model.detach().cpu().numpy(), faces=rec.model.faces.cpu().numpy(),
                uv=rec.model.uv.cpu().numpy(), uv_faces=rec.model.uv_faces.cpu().numpy(),
                texture=tex.detach().cpu().numpy(), normals=normals.detach().cpu().numpy())


def reconstruction_params(rec: Reconstruction) -> dict[str, Any]:
    """JSON-ready parameters: pose (degrees), camera, coefficients, landmarks, model id, timings."""
    f = rec.fit
    p = f.params
    cam = f.camera
    lmk3d = rec.model.landmarks(rec.verts_model[None])[0]
    return {
        "recon3d_version": __version__,
        "image_path": str(rec.image_path) if rec.image_path else None,
        "image_size": list(rec.image.shape[:2]),
        "pose_deg": rec.pose_deg,
        "camera": {"K": cam.K[0].tolist(), "R": cam.R[0].tolist(), "t": cam.t[0].tolist(),
                   "convention": "OpenCV camera frame, x_cam = R @ x_model + t, metres; K in pixels"},
        "coefficients": {"shape": p.shape[0].tolist(), "expr": p.expr[0].tolist(), "albedo": p.albedo[0].tolist(),
                         "rot_axis_angle": p.rot[0].tolist(), "trans_m": p.trans[0].tolist(),
                         "light_sh": p.light[0].tolist()},
        "landmarks_px": rec.lmk_detected_px.tolist(),
        "landmarks_fitted_px": f.lmk_px[0].tolist(),
        "landmarks_model": lmk3d.tolist(),
        "detection_method": rec.detection_method,
        "model": {"name": rec.model.name, "version": rec.model.version, "n_verts": rec.model.n_verts},
        "texture_size": list(rec.texture.shape[:2]),
        "timings_s": {k: round(v, 4) for k, v in rec.timings.items()},
    }


def check_export_formats(formats: Sequence[str]) -> None:
    """Raise ``ValueError`` naming any of ``formats`` that is not in :data:`EXPORT_FORMATS`."""
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad:
        raise ValueError(f"Reconstruction.save(): unknown formats {bad}; choose from {EXPORT_FORMATS}")


def write_reconstruction(rec: Reconstruction, out_dir: str | os.PathLike, *, formats: Sequence[str] = ("obj",),
                         extras: bool = True, overlay: torch.Tensor | None = None,
                         batch: dict[str, Any] | None = None) -> list[Path]:
    """Write the output folder of ``rec`` into ``out_dir`` (replaced if it exists), atomically: the
    files are written to a temporary folder next to it, which is swapped in at the end
    (:func:`recon3d.io.atomic.atomic_dir`: a reader never sees the folder missing or half written).

    Args:
        rec: the reconstruction.
        out_dir: the folder (its parent is created).
        formats: mesh formats, from :data:`EXPORT_FORMATS`.
        extras: also the visible-only texture and its mask, the overlay, the input photo and the
            landmarks.
        overlay: ``(H, W, 3)`` the reconstruction rendered over the photo
            (:func:`recon3d.reconstruct.render_overlay`); needed with ``extras``.
        batch: recorded as the JSON's ``batch`` (the batch job: ``source``, ``job``, ``face``,
            ``n_faces``, ``all_faces``), read back by :func:`is_job_exported` for ``--resume``.

    Returns:
        The files of the folder, sorted.

    Raises:
        ValueError: an unknown format, or ``extras`` without ``overlay``.
        OutputError: the folder cannot be written (one line: read-only, disk full, a file in the way).
    """
    check_export_formats(formats)
    if extras and overlay is None:
        raise ValueError("write_reconstruction(): extras=True needs overlay= (recon3d.reconstruct.render_overlay)")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        n = rec.name
        files = export_file_names(n, formats, extras=extras)
        mesh = reconstruction_mesh(rec)
        # PNG encoding (zlib) releases the GIL: the files are written by two threads
        writes = [lambda fmt=fmt: save_mesh(tmp / files[fmt], mesh, format=fmt, texture_name=files["texture"])
                  for fmt in formats]
        if "obj" not in formats:
            writes.append(lambda: save_image(tmp / files["texture"], rec.texture))
        if extras:
            for role, img in (("texture_visible", rec.texture_visible), ("texture_mask", rec.texture_mask),
                              ("overlay", overlay), ("input", rec.image)):
                writes.append(lambda fname=files[role], img=img: save_image(tmp / fname, img))
        with ThreadPoolExecutor(max_workers=2) as pool:
            for fut in [pool.submit(w) for w in writes]:
                fut.result()  # re-raises the first failure
        if extras:
            np.savetxt(tmp / files["landmarks"], rec.lmk_detected_px.cpu().numpy(), fmt="%.3f")
        params = reconstruction_params(rec)
        params["files"] = files
        if batch is not None:
            params["batch"] = dict(batch)
        (tmp / f"{n}.json").write_text(json.dumps(params, indent=1), encoding="utf-8")
    return sorted(out_dir.iterdir())


@dataclass(frozen=True)
class ExportedFace:
    """An output folder (or a mesh file with its siblings) as read by :func:`read_export`.

    Attributes:
        folder: the folder.
        name: the stem of its files.
        files: role (``"obj"``, ``"glb"``, ``"ply"``, ``"texture"``, ``"texture_visible"``,
            ``"texture_mask"``, ``"overlay"``, ``"input"``, ``"landmarks"``) -> path, for the files
            that exist.
        json_path: ``<name>.json`` when it exists.
        meta: the parsed JSON (``{}`` without one).
        listed: role -> file name as listed in the JSON's ``files`` (``{}`` without one).
        entry: the mesh file :func:`read_export` was given, if any.
    """

    folder: Path
    name: str
    files: dict[str, Path] = field(default_factory=dict)
    json_path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    listed: dict[str, str] = field(default_factory=dict)
    entry: Path | None = None

    @property
    def mesh_path(self) -> Path | None:
        """The mesh file given to :func:`read_export`, else the first one found (obj, glb, ply), or None."""
        if self.entry is not None:
            return self.entry
        return next((self.files[f] for f in EXPORT_FORMATS if f in self.files), None)

    def is_complete(self, formats: Sequence[str] = ("obj",)) -> bool:
        """Whether the folder was fully written with (at least) ``formats``: the JSON exists and lists
        ``files`` that include every format, and every listed file exists."""
        if self.json_path is None or not isinstance(self.listed, dict) or not self.listed:
            return False
        if any(f not in self.listed for f in formats):
            return False
        return all((self.folder / str(fname)).is_file() for fname in self.listed.values())


def _stem_of_folder(folder: Path) -> str:
    for j in sorted(folder.glob("*.json")):
        if any(j.with_suffix(suf).is_file() for suf in _MESH_SUFFIXES):
            return j.stem
    for suf in _MESH_SUFFIXES:
        found = sorted(folder.glob(f"*{suf}"))
        if found:
            return found[0].stem
    raise Recon3DError(f"no .obj/.glb/.ply mesh found in folder {folder}")


def read_export(path: str | os.PathLike, *, name: str | None = None) -> ExportedFace:
    """Read an output folder (or a mesh file and the files next to it that share its stem).

    Args:
        path: the folder, or one of its mesh files.
        name: the stem to look for in a folder (default: the stem of the JSON that has a mesh next to
            it, else of the first mesh file).

    Returns:
        :class:`ExportedFace`.

    Raises:
        Recon3DError: no mesh found (without ``name``), or a JSON file that is not valid JSON.
    """
    path = Path(path)
    mesh_path = None  # a mesh file given as the entry point comes first
    if path.is_dir():
        folder = path
        if name is None:
            name = _stem_of_folder(folder)
    else:
        folder, name, mesh_path = path.parent, path.stem, path
    json_path = folder / f"{name}.json"
    meta: dict[str, Any] = {}
    if json_path.is_file():
        try:
            meta = json.loads(json_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise Recon3DError(f"{json_path}: not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise Recon3DError(f"{json_path}: unexpected content (not a JSON object)")
    listed = meta.get("files") if isinstance(meta.get("files"), dict) else {}
    names = {**export_file_names(name), **{k: str(v) for k, v in listed.items() if k in export_file_names(name)}}
    files = {role: folder / fname for role, fname in names.items() if (folder / fname).is_file()}
    return ExportedFace(folder=folder, name=name, files=files, json_path=json_path if json_path.is_file() else None,
                        meta=meta, listed=dict(listed), entry=mesh_path)


def is_exported(out_dir: str | os.PathLike, name: str, formats: Sequence[str] = ("obj",)) -> bool:
    """Whether ``out_dir`` holds a complete output folder of ``name`` with ``formats`` (``--resume``).
    A missing folder, a missing or unreadable JSON, or any listed file missing: not exported."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return False
    try:
        return read_export(out_dir, name=name).is_complete(formats)
    except Recon3DError:
        return False


def _complete_face(root: Path, name: str, formats: Sequence[str], source: str | None) -> ExportedFace | None:
    folder = root / name
    if not folder.is_dir():
        return None
    try:
        exp = read_export(folder, name=name)
    except Recon3DError:
        return None
    if not exp.is_complete(formats):
        return None
    if source is not None:
        batch = exp.meta.get("batch")
        if isinstance(batch, dict) and "source" in batch:
            recorded = batch["source"]
        else:  # folders written before ``batch`` was recorded
            ip = exp.meta.get("image_path")
            recorded = str(Path(ip).resolve()) if isinstance(ip, str) else None
        if recorded != source:
            return None
    return exp


def is_job_exported(out_root: str | os.PathLike, name: str, formats: Sequence[str] = ("obj",), *,
                    source: str | None = None, all_faces: bool = False) -> bool:
    """Whether the batch job ``name`` is finished in ``out_root`` (``--resume``).

    Without ``all_faces``: ``out_root/<name>`` is complete (:meth:`ExportedFace.is_complete`). With
    ``all_faces``: either ``out_root/<name>`` is complete and was written by an ``all_faces`` run that
    found one face, or ``<name>_face0`` records ``n_faces`` = N and ``<name>_face0 .. _face<N-1>`` are
    all complete. With ``source`` (the job's input, :func:`recon3d.batch.jobs.source_id`), a folder
    counts only if its JSON records that same input, so a folder written for another input is
    never taken as this job's result.
    """
    root = Path(out_root)
    single = _complete_face(root, name, formats, source)
    if single is not None:
        if not all_faces:
            return True
        batch = single.meta.get("batch")
        return isinstance(batch, dict) and batch.get("all_faces") is True and batch.get("n_faces") == 1
    if not all_faces:
        return False
    first = _complete_face(root, f"{name}_face0", formats, source)
    if first is None:
        return False
    batch = first.meta.get("batch")
    n = batch.get("n_faces") if isinstance(batch, dict) else None
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        return False
    return all(_complete_face(root, f"{name}_face{i}", formats, source) is not None for i in range(1, n))
