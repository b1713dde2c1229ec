"""Open3D face viewer: ``python -m viewers.face PATH``.

PATH is an output folder of ``pipelines.reconstruct``, a mesh file (OBJ with MTL + texture, GLB or
PLY) or a photo (reconstructed first). Without ``--screenshot`` a window opens (Open3D legacy
``VisualizerWithKeyCallback``); with it, one image is rendered off-screen (no display needed) and
written. Run ``python -m viewers.face --help`` for the keys.

Exit codes: 0 success, 1 a recon3d error (bad file, reconstruction failed), 2 usage error or Open3D
missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from recon3d.errors import BackendUnavailableError, Recon3DError
from recon3d.io.export import export_file_names, read_export
from recon3d.io.mesh import load_mesh
from recon3d.structures.mesh import Mesh

from . import _o3d

__all__ = ["FaceScene", "ViewState", "FaceViewer", "load_scene", "render_screenshot", "write_demo_folder", "main", "KEYS"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MESH_SUFFIXES = (".obj", ".glb", ".ply")
YAW_STEP_DEG = 15.0
PITCH_STEP_DEG = 10.0
BACKDROPS = ("off", "behind", "side")

#: (key label, action) pairs, printed on start and in ``--help``.
KEYS = (
    ("T", "texture: completed <-> visible-only"),
    ("W", "wireframe on/off"),
    ("N", "vertex normals on/off"),
    ("L", "68 landmarks on/off"),
    ("B", "input photo backdrop: off -> behind the head (camera-aligned) -> side by side"),
    ("C", "view from the photo's camera (reconstruction folders)"),
    ("F", "frontal view"),
    ("Left/Right", f"head yaw -/+{YAW_STEP_DEG:g} deg (nose to screen left/right)"),
    ("Up/Down", f"head pitch -/+{PITCH_STEP_DEG:g} deg (nose up/down)"),
    ("0", "reset head pose"),
    ("S", "save screenshot (viewer_<name>_<time>.png in --shots-dir)"),
    ("H", "print these keys"),
    ("Q / Esc", "quit"),
    ("mouse", "drag: rotate view, wheel: zoom, shift+drag: roll, ctrl+drag: pan"),
)

_GLFW = {"RIGHT": 262, "LEFT": 263, "DOWN": 264, "UP": 265, "ESC": 256}


def keys_text() -> str:
    """The key bindings as printable lines."""
    return "\n".join(f"  {k:<11} {a}" for k, a in KEYS)


# -------------------------------------------------------------------------------------------- scene


@dataclass(frozen=True, eq=False)
class FaceScene:
    """Everything the viewer can show. Arrays are numpy, model frame, metres.

    Attributes:
        name: display name (file stem).
        mesh: the head mesh with the completed texture (or vertex colours).
        texture_visible: ``(Ht, Wt, 3)`` visible-only texture (unseen texels greyed), or None.
        landmarks_model: ``(68, 3)`` landmarks in the model frame, or None.
        photo: ``(H, W, 3)`` float [0, 1] input photo, or None.
        K, R, t: photo camera (``x_cam = R @ x_model + t``, OpenCV frame, pixels), or None.
        pose_deg: the fitted head pose, for display.
    """

    name: str
    mesh: Mesh
    texture_visible: np.ndarray | None = None
    landmarks_model: np.ndarray | None = None
    photo: np.ndarray | None = None
    K: np.ndarray | None = None
    R: np.ndarray | None = None
    t: np.ndarray | None = None
    pose_deg: dict[str, float] = field(default_factory=dict)

    @property
    def has_camera(self) -> bool:
        return self.K is not None and self.R is not None and self.t is not None and self.photo is not None


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _read_mask(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def load_scene(path: str | Path) -> FaceScene:
    """Load a mesh file or a reconstruction output folder (``<stem>.obj`` + ``<stem>.json`` + textures),
    read through :func:`recon3d.io.export.read_export`.

    The extras (visible-only texture and mask, landmarks, photo, camera) are read from the files
    next to the mesh that share its stem; each one that is missing is simply not available.

    Raises:
        Recon3DError: no mesh found, or a corrupt mesh/JSON file (the message names the file).
    """
    try:
        exp = read_export(path)
    except Recon3DError as e:
        raise Recon3DError(f"viewers.face: {e}") from None
    if exp.mesh_path is None:
        raise Recon3DError(f"viewers.face: no .obj/.glb/.ply mesh found for {path}")
    mesh = load_mesh(exp.mesh_path)
    scene: dict[str, Any] = {"name": exp.name, "mesh": mesh}

    if "texture_visible" in exp.files:
        tex = _read_rgb(exp.files["texture_visible"])
        if "texture_mask" in exp.files:
            mask = _read_mask(exp.files["texture_mask"])
            if mask.shape == tex.shape[:2]:
                grey = np.array([0.45, 0.45, 0.5], dtype=np.float32)
                tex = tex * mask[..., None] + grey * (1.0 - mask[..., None])
        scene["texture_visible"] = tex

    if exp.json_path is not None:
        meta = exp.meta
        try:
            if "landmarks_model" in meta:
                lm = np.asarray(meta["landmarks_model"], dtype=np.float64).reshape(-1, 3)
                scene["landmarks_model"] = lm
            cam = meta.get("camera") or {}
            if {"K", "R", "t"} <= set(cam):
                scene["K"] = np.asarray(cam["K"], dtype=np.float64).reshape(3, 3)
                scene["R"] = np.asarray(cam["R"], dtype=np.float64).reshape(3, 3)
                scene["t"] = np.asarray(cam["t"], dtype=np.float64).reshape(3)
            scene["pose_deg"] = {k: float(v) for k, v in (meta.get("pose_deg") or {}).items()}
        except (TypeError, ValueError) as e:
            raise Recon3DError(f"{exp.json_path}: unexpected content ({e})") from None
        photo_path = exp.files.get("input")
        if photo_path is None and meta.get("image_path"):
            photo_path = Path(meta["image_path"])
        if photo_path is not None and photo_path.is_file():
            scene["photo"] = _read_rgb(photo_path)
    return FaceScene(**scene)


def _reconstruct_image(image: Path, out_dir: Path) -> Path:
    """Reconstruct the largest face of ``image`` with ``recon3d.reconstruct`` into ``out_dir``
    (the ``pipelines.reconstruct`` folder layout), showing a progress bar on stderr."""
    try:
        from recon3d.reconstruct import reconstruct, save_reconstruction
    except ImportError:
        raise BackendUnavailableError("reconstruction not available in this build") from None
    from tqdm import tqdm

    with tqdm(total=100, desc=f"reconstructing {image.name}", unit="%", file=sys.stderr,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}]") as bar:

        def progress(stage: str, fraction: float) -> None:
            bar.set_postfix_str(stage, refresh=False)
            bar.update(max(0.0, 100.0 * float(fraction) - bar.n))

        try:
            rec = reconstruct(image, callback=progress)
        except ImportError as e:  # a part of the pipeline (e.g. the default model) is missing
            raise BackendUnavailableError(f"reconstruction not available in this build ({e})") from e
        bar.set_postfix_str("saving", refresh=False)
        save_reconstruction(rec, out_dir, formats=["obj"])
        bar.update(100 - bar.n)
    return out_dir


# ------------------------------------------------------------------------------------------- viewer


@dataclass(frozen=True)
class ViewState:
    """What is shown. Angles in degrees (I/O unit); ``yaw``/``pitch`` turn the head as in the
    pose convention of :mod:`recon3d.conventions`."""

    texture: str = "completed"  # or "visible"
    wireframe: bool = False
    normals: bool = False
    landmarks: bool = False
    backdrop: str = "off"  # "off", "behind", "side"
    view: str = "front"  # "front" or "photo"
    yaw: float = 0.0
    pitch: float = 0.0


def _head_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """``R_head = Ry(yaw) @ Rx(pitch)`` (roll 0), the model-frame head rotation of the pose convention."""
    import torch

    from recon3d.camera import euler_to_matrix

    ang = torch.tensor([0.0, math.radians(yaw_deg), math.radians(pitch_deg)], dtype=torch.float64)
    return euler_to_matrix(ang, "ZYX").numpy()


class FaceViewer:
    """Builds the Open3D geometries of a :class:`FaceScene` for a :class:`ViewState` and shows them.

    Args:
        scene: what to show.
        size: window ``(width, height)`` in pixels.
        visible: False renders off-screen (screenshots; no display needed).
        state: initial state.
        interactive: use ``VisualizerWithKeyCallback`` (keys) instead of ``Visualizer``.
        shots_dir: folder for the S-key screenshots.
    """

    def __init__(self, scene: FaceScene, *, size: tuple[int, int] = (800, 800), visible: bool = True,
                 state: ViewState = ViewState(), interactive: bool = False, shots_dir: Path = Path(".")):
        self.o3d = _o3d.import_open3d()
        self.scene = scene
        self.state = state
        self.size = size
        self.shots_dir = Path(shots_dir)
        self.messages: list[str] = []
        V = scene.mesh.verts.astype(np.float64)
        lo, hi = V.min(0), V.max(0)
        self.diag = float(np.linalg.norm(hi - lo)) or 1.0
        # heads from a reconstruction turn about the model origin (as the pose does); others about their centre
        self.pivot = np.zeros(3) if scene.has_camera else 0.5 * (lo + hi)
        if scene.mesh.normals is not None:
            self.normals0 = scene.mesh.normals.astype(np.float64)
        else:
            self.normals0 = np.asarray(_o3d.textured_mesh(V, scene.mesh).vertex_normals)
        vis_cls = self.o3d.visualization.VisualizerWithKeyCallback if interactive else self.o3d.visualization.Visualizer
        self.vis = vis_cls()
        ok = self.vis.create_window(window_name=f"recon3d viewer - {scene.name}", width=size[0], height=size[1],
                                    visible=visible)
        if not ok:
            raise BackendUnavailableError("viewers.face: Open3D could not create a window (no display or GL context?)")
        opt = self.vis.get_render_option()
        opt.background_color = np.array([0.12, 0.12, 0.14])
        opt.mesh_show_back_face = True
        opt.line_width = 1.0
        self.geoms: list[Any] = []
        self._build(reset_view=True)
        if interactive:
            self._register_keys()

    # ---- geometry
    def _head_points(self, pts: np.ndarray) -> np.ndarray:
        R = _head_rotation(self.state.yaw, self.state.pitch)
        return (pts - self.pivot) @ R.T + self.pivot

    def _backdrop(self) -> Any | None:
        sc, mode = self.scene, self.state.backdrop
        if mode == "off" or sc.photo is None:
            return None
        H, W = sc.photo.shape[:2]
        V = sc.mesh.verts.astype(np.float64)
        if mode == "behind" and sc.has_camera:
            z_cam = self._head_points(V) @ sc.R[2] + sc.t[2]  # stay behind the turned head too
            depth = float(z_cam.max()) + 0.05 * self.diag
            px = np.array([[-0.5, -0.5], [W - 0.5, -0.5], [W - 0.5, H - 0.5], [-0.5, H - 0.5]])
            ray = np.linalg.solve(sc.K, np.concatenate([px, np.ones((4, 1))], 1).T).T  # z = 1
            corners = (ray * depth - sc.t) @ sc.R  # R^T (x_cam - t), row vectors
            return _o3d.image_quad(corners, sc.photo)
        lo, hi = V.min(0), V.max(0)
        h = hi[1] - lo[1]
        w = h * W / H
        x0 = hi[0] + 0.15 * h
        yc, zc = 0.5 * (lo[1] + hi[1]), 0.5 * (lo[2] + hi[2])
        corners = np.array([[x0, yc + h / 2, zc], [x0 + w, yc + h / 2, zc],
                            [x0 + w, yc - h / 2, zc], [x0, yc - h / 2, zc]])
        return _o3d.image_quad(corners, sc.photo)

    def geometries(self) -> list[Any]:
        """The Open3D geometries for the current state."""
        sc, st = self.scene, self.state
        verts = self._head_points(sc.mesh.verts.astype(np.float64))
        normals = self.normals0 @ _head_rotation(st.yaw, st.pitch).T
        tex = sc.texture_visible if (st.texture == "visible" and sc.texture_visible is not None) else None
        out = [_o3d.textured_mesh(verts, sc.mesh, tex, normals=normals)]
        if st.wireframe:
            out.append(_o3d.wireframe(verts, sc.mesh.faces))
        if st.normals:
            out.append(_o3d.normal_lines(verts, normals, 0.02 * self.diag, max_lines=2500))
        if st.landmarks and sc.landmarks_model is not None:
            out.append(_o3d.spheres(self._head_points(sc.landmarks_model), 0.006 * self.diag))
        bd = self._backdrop()
        if bd is not None:
            out.append(bd)
        return out

    def _build(self, reset_view: bool = False) -> None:
        ctr = self.vis.get_view_control()
        params = None if reset_view else ctr.convert_to_pinhole_camera_parameters()
        for g in self.geoms:
            self.vis.remove_geometry(g, reset_bounding_box=False)
        self.geoms = self.geometries()
        for g in self.geoms:
            self.vis.add_geometry(g, reset_bounding_box=True)
        if params is not None:
            ctr.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True)
        else:
            self.apply_view()

    def apply_view(self) -> None:
        """Point the view at the head: frontal, or through the photo's camera when ``view == "photo"``."""
        ctr = self.vis.get_view_control()
        sc = self.scene
        if self.state.view == "photo" and sc.has_camera:
            W, H = self.size
            Hp, Wp = sc.photo.shape[:2]
            s = min(W / Wp, H / Hp)  # fit the photo's field of view into the window
            K = sc.K.copy()
            K[0, 0] *= s
            K[1, 1] *= s
            # Open3D's legacy view keeps the principal point at the window centre (it ignores
            # other values), so the photo's principal point lands there: see photo_px_to_window()
            K[0, 2], K[1, 2] = (W - 1) / 2.0, (H - 1) / 2.0
            params = self.o3d.camera.PinholeCameraParameters()
            params.intrinsic = self.o3d.camera.PinholeCameraIntrinsic(W, H, K)
            ext = np.eye(4)
            ext[:3, :3], ext[:3, 3] = sc.R, sc.t  # Open3D extrinsics are OpenCV world->camera
            params.extrinsic = ext
            if ctr.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True):
                return
            self.messages.append("could not set the photo camera view; using the frontal view")
        lo = np.min([g.get_min_bound() for g in self.geoms], axis=0)
        hi = np.max([g.get_max_bound() for g in self.geoms], axis=0)
        ctr.set_front([0.0, 0.0, 1.0])  # camera on +Z looking down -Z at the face
        ctr.set_up([0.0, 1.0, 0.0])
        ctr.set_lookat(0.5 * (lo + hi))
        ctr.set_zoom(0.95 if self.state.backdrop == "side" and sc.photo is not None else 0.7)

    def photo_px_to_window(self, xy: np.ndarray) -> np.ndarray:
        """Photo pixel coordinates ``(N, 2)`` to window pixels in the ``view == "photo"`` view."""
        sc = self.scene
        Hp, Wp = sc.photo.shape[:2]
        W, H = self.size
        s = min(W / Wp, H / Hp)
        c_win = np.array([(W - 1) / 2.0, (H - 1) / 2.0])
        return (np.asarray(xy) - sc.K[:2, 2]) * s + c_win

    def set_state(self, **changes: Any) -> None:
        """Change the state and rebuild the geometries (the view is kept)."""
        view_changed = "view" in changes and changes["view"] != self.state.view
        self.state = replace(self.state, **changes)
        self._build()
        if view_changed:
            self.apply_view()

    # ---- output
    def capture(self) -> np.ndarray:
        """Render and return the current image, ``(H, W, 3)`` float32 [0, 1], row 0 at the top."""
        self.vis.poll_events()
        self.vis.update_renderer()
        return np.asarray(self.vis.capture_screen_float_buffer(do_render=True), dtype=np.float32).copy()

    def save_screenshot(self, path: str | Path) -> Path:
        """Render and write a PNG."""
        return _write_png(path, self.capture())

    def close(self) -> None:
        """Destroy the window and drop the Open3D visualizer now.

        Open3D's GL context dies with the visualizer object; a stale one freed later (e.g. by the
        garbage collector) would break the context of a newer window, so it is released here.
        """
        if self.vis is not None:
            self.vis.destroy_window()
            self.vis = None
            self.geoms = []

    # ---- interactive
    def _register_keys(self) -> None:
        def action(fn):
            def cb(vis):
                fn()
                for m in self.messages:
                    print(m, flush=True)
                self.messages.clear()
                print(self.status_line(), flush=True)
                return True
            return cb

        st = lambda: self.state  # noqa: E731
        bind = {
            ord("T"): lambda: self.set_state(texture="visible" if st().texture == "completed" else "completed"),
            ord("W"): lambda: self.set_state(wireframe=not st().wireframe),
            ord("N"): lambda: self.set_state(normals=not st().normals),
            ord("L"): lambda: self.set_state(landmarks=not st().landmarks),
            ord("B"): lambda: self.set_state(backdrop=BACKDROPS[(BACKDROPS.index(st().backdrop) + 1) % 3]),
            ord("C"): lambda: (self.set_state(view="photo"), self.apply_view()),
            ord("F"): lambda: (self.set_state(view="front"), self.apply_view()),
            _GLFW["RIGHT"]: lambda: self.set_state(yaw=st().yaw + YAW_STEP_DEG),
            _GLFW["LEFT"]: lambda: self.set_state(yaw=st().yaw - YAW_STEP_DEG),
            _GLFW["UP"]: lambda: self.set_state(pitch=st().pitch - PITCH_STEP_DEG),
            _GLFW["DOWN"]: lambda: self.set_state(pitch=st().pitch + PITCH_STEP_DEG),
            ord("0"): lambda: self.set_state(yaw=0.0, pitch=0.0),
            ord("S"): self._key_screenshot,
            ord("H"): lambda: print(keys_text()),
        }
        for key, fn in bind.items():
            self.vis.register_key_callback(key, action(fn))
        for key in (ord("Q"), _GLFW["ESC"]):
            self.vis.register_key_callback(key, lambda vis: (vis.close(), False)[1])

    def _key_screenshot(self) -> None:
        path = self.shots_dir / f"viewer_{self.scene.name}_{time.strftime('%Y%m%d-%H%M%S')}.png"
        self.save_screenshot(path)
        print(f"saved {path}", flush=True)

    def status_line(self) -> str:
        s = self.state
        return (f"texture={s.texture} wireframe={s.wireframe} normals={s.normals} landmarks={s.landmarks} "
                f"backdrop={s.backdrop} view={s.view} yaw={s.yaw:+.0f} pitch={s.pitch:+.0f}")

    def run(self, quit_after: float | None = None) -> None:
        """Show the window until it is closed (or ``quit_after`` seconds have passed)."""
        if quit_after is not None:
            t0 = time.monotonic()

            def tick(vis):
                if time.monotonic() - t0 > quit_after:
                    vis.close()
                return False

            self.vis.register_animation_callback(tick)
        self.vis.run()


def _write_png(path: str | Path, img: np.ndarray) -> Path:
    """Write a screenshot atomically (umask permissions); a folder that cannot be made or written is a
    one-line ``Recon3DError``."""
    from recon3d.io import save_image

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Recon3DError(f"cannot create folder {path.parent} ({e.strerror or e})") from None
    return save_image(path, _o3d.to_uint8_image(img))


def render_screenshot(scene: FaceScene, path: str | Path, *, size: tuple[int, int] = (512, 512),
                      state: ViewState = ViewState()) -> np.ndarray:
    """Render ``scene`` off-screen (no display needed) to a PNG and return the image ``(H, W, 3)``.

    Raises:
        BackendUnavailableError: Open3D missing or no off-screen GL context.
    """
    viewer = FaceViewer(scene, size=size, visible=False, state=state)
    try:
        img = viewer.capture()
        _write_png(path, img)
        return img
    finally:
        viewer.close()


# ------------------------------------------------------------------------------------------ demo data


def write_demo_folder(out_dir: str | Path, stem: str = "demo", *, n: int = 96, tex_size: int = 256) -> Path:
    """Write a small synthetic reconstruction folder (face-like bump mesh, skin texture, JSON, photo).

    It follows the ``pipelines.reconstruct`` output layout so the viewer (and its tests) can run
    without the real pipeline. The mesh is in the model frame (metres, +Y up, +Z out of the face).

    Returns:
        ``out_dir``.
    """
    from PIL import Image

    from recon3d.io.mesh import save_mesh

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # front part of an ellipsoid, parametrised by (u, v) in [0, 1]^2 (OBJ UV: v up = +Y)
    u, v = np.meshgrid(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, n))
    az, el = (u - 0.5) * np.radians(200.0), (v - 0.5) * np.radians(150.0)
    a, b, c = 0.075, 0.105, 0.09
    x, y, z = a * np.sin(az) * np.cos(el), b * np.sin(el), c * np.cos(az) * np.cos(el)

    def bump(cx, cy, sx, sy, h):
        return h * np.exp(-(((u - cx) / sx) ** 2 + ((v - cy) / sy) ** 2))

    z = z + bump(0.5, 0.47, 0.035, 0.09, 0.028) - bump(0.41, 0.58, 0.035, 0.025, 0.008) \
        - bump(0.59, 0.58, 0.035, 0.025, 0.008) + bump(0.5, 0.33, 0.06, 0.02, 0.006)
    verts = np.stack([x, y, z], -1).reshape(-1, 3)
    uv = np.stack([u, v], -1).reshape(-1, 2)
    idx = np.arange(n * n).reshape(n, n)
    q0, q1, q2, q3 = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]  # (row=v, col=u)
    faces = np.concatenate([np.stack([q0, q1, q2], -1).reshape(-1, 3), np.stack([q0, q2, q3], -1).reshape(-1, 3)])

    # texture in UV space: row 0 is the top (v = 1)
    tu, tv = np.meshgrid((np.arange(tex_size) + 0.5) / tex_size, 1.0 - (np.arange(tex_size) + 0.5) / tex_size)
    skin = np.array([0.86, 0.64, 0.52], dtype=np.float32)
    tex = np.broadcast_to(skin, (tex_size, tex_size, 3)).copy()
    tex *= (0.93 + 0.07 * np.cos(6 * tu) * np.cos(5 * tv))[..., None]

    def paint(cx, cy, rx, ry, color):
        m = ((tu - cx) / rx) ** 2 + ((tv - cy) / ry) ** 2 < 1.0
        tex[m] = color

    for cx in (0.41, 0.59):
        paint(cx, 0.585, 0.04, 0.018, [0.95, 0.95, 0.93])
        paint(cx, 0.585, 0.016, 0.018, [0.25, 0.17, 0.12])
        paint(cx, 0.66, 0.05, 0.01, [0.35, 0.24, 0.17])
    paint(0.5, 0.33, 0.06, 0.018, [0.72, 0.3, 0.3])
    paint(0.5, 0.95, 0.5, 0.12, [0.3, 0.2, 0.14])  # hair line at the top
    mesh = Mesh(verts=verts, faces=faces, uv=uv, texture=tex)
    save_mesh(out / f"{stem}.obj", mesh, texture_name=f"{stem}_texture.png")
    mask = (tu < 0.55).astype(np.float32)  # pretend the subject's right half was visible
    Image.fromarray(_o3d.to_uint8_image(tex * mask[..., None])).save(out / f"{stem}_texture_visible.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(out / f"{stem}_texture_mask.png")

    # 68 landmarks (rough iBUG layout in UV space, lifted onto the surface by bilinear lookup)
    jaw = [(0.5 + 0.17 * math.cos(t), 0.5 + 0.3 * math.sin(t)) for t in np.linspace(math.pi * 1.05, math.pi * 1.95, 17)]
    brows = [(0.33 + 0.035 * i, 0.66 + 0.01 * math.sin(i * math.pi / 4)) for i in range(5)]
    brows += [(0.53 + 0.035 * i, 0.66 + 0.01 * math.sin(i * math.pi / 4)) for i in range(5)]
    nose = [(0.5, 0.56 - 0.04 * i) for i in range(4)] + [(0.5 + 0.02 * (i - 2), 0.42) for i in range(5)]
    eyes = []
    for cx in (0.41, 0.59):
        eyes += [(cx - 0.04, 0.585), (cx - 0.015, 0.6), (cx + 0.015, 0.6), (cx + 0.04, 0.585),
                 (cx + 0.015, 0.57), (cx - 0.015, 0.57)]
    mouth = [(0.5 + 0.06 * math.cos(t), 0.33 + 0.018 * math.sin(t)) for t in np.linspace(math.pi, -math.pi, 13)[:12]]
    mouth += [(0.5 + 0.04 * math.cos(t), 0.33 + 0.006 * math.sin(t)) for t in np.linspace(math.pi, -math.pi, 9)[:8]]
    lm_uv = np.array(jaw + brows + nose + eyes + mouth)
    grid = verts.reshape(n, n, 3)
    ci, ri = lm_uv[:, 0] * (n - 1), lm_uv[:, 1] * (n - 1)
    i0, j0 = np.clip(np.floor(ri).astype(int), 0, n - 2), np.clip(np.floor(ci).astype(int), 0, n - 2)
    fr, fc = (ri - i0)[:, None], (ci - j0)[:, None]
    lm_model = ((1 - fr) * (1 - fc) * grid[i0, j0] + (1 - fr) * fc * grid[i0, j0 + 1]
                + fr * (1 - fc) * grid[i0 + 1, j0] + fr * fc * grid[i0 + 1, j0 + 1])

    # a camera 0.6 m in front, frontal, and a "photo" splatted from it
    Hp, Wp = 240, 200
    K = np.array([[520.0, 0.0, (Wp - 1) / 2], [0.0, 520.0, (Hp - 1) / 2 + 4], [0.0, 0.0, 1.0]])
    import torch

    from recon3d.conventions import frontal_rotation, uv_to_texel

    R = frontal_rotation(torch.float64).numpy()
    t = np.array([0.0, 0.0, 0.6])

    def project(p):
        pc = p @ R.T + t
        q = pc @ K.T
        return q[:, :2] / q[:, 2:3], pc[:, 2]

    photo = np.zeros((Hp, Wp, 3), np.float32) + np.array([0.55, 0.62, 0.7], np.float32) * \
        np.linspace(1.0, 0.7, Hp, dtype=np.float32)[:, None, None]
    dense_u, dense_v = np.meshgrid(np.linspace(0, 1, 3 * n), np.linspace(0, 1, 3 * n))
    dense = np.stack([dense_u, dense_v], -1).reshape(-1, 2)
    gi, gj = dense[:, 1] * (n - 1), dense[:, 0] * (n - 1)
    i0d, j0d = np.clip(gi.astype(int), 0, n - 2), np.clip(gj.astype(int), 0, n - 2)
    fi, fj = (gi - i0d)[:, None], (gj - j0d)[:, None]
    pts = ((1 - fi) * (1 - fj) * grid[i0d, j0d] + (1 - fi) * fj * grid[i0d, j0d + 1]
           + fi * (1 - fj) * grid[i0d + 1, j0d] + fi * fj * grid[i0d + 1, j0d + 1])
    xy, zc = project(pts)
    cr = uv_to_texel(torch.from_numpy(dense), (tex_size, tex_size)).numpy()
    col = tex[np.clip(np.round(cr[:, 1]).astype(int), 0, tex_size - 1), np.clip(np.round(cr[:, 0]).astype(int), 0, tex_size - 1)]
    order = np.argsort(-zc)  # far first, near overwrites
    px = np.round(xy[order]).astype(int)
    ok = (px[:, 0] >= 0) & (px[:, 0] < Wp) & (px[:, 1] >= 0) & (px[:, 1] < Hp)
    photo[px[ok, 1], px[ok, 0]] = col[order][ok] * 0.95
    Image.fromarray(_o3d.to_uint8_image(photo)).save(out / f"{stem}_input.png")
    lm_px, _ = project(lm_model)
    meta = {
        "image_path": str(out / f"{stem}_input.png"),
        "image_size": [Hp, Wp],
        "camera": {"K": K.tolist(), "R": R.tolist(), "t": t.tolist()},
        "pose_deg": {"yaw": 0.0, "pitch": 0.0, "roll": 0.0},
        "landmarks_px": lm_px.tolist(),
        "landmarks_model": lm_model.tolist(),
        "model": {"name": "viewers.face demo (synthetic)"},
        "files": {role: fname for role, fname in export_file_names(stem, ["obj"]).items() if (out / fname).is_file()},
    }
    (out / f"{stem}.json").write_text(json.dumps(meta, indent=1))
    return out


# ---------------------------------------------------------------------------------------------- CLI


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be WxH, e.g. 800x800, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"--size must be between 16 and 8192 pixels per side, got {text!r}")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m viewers.face",
        description="Show a reconstructed face (output folder, OBJ/GLB/PLY, or a photo to reconstruct) "
                    "in an Open3D window, or render a screenshot off-screen.",
        epilog="keys in the window:\n" + keys_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", nargs="?", type=Path,
                   help="reconstruction folder, mesh file (.obj/.glb/.ply) or image (.jpg/.png/...)")
    p.add_argument("--demo", action="store_true", help="show a synthetic demo face (no PATH needed)")
    p.add_argument("--screenshot", type=Path, metavar="OUT.png", help="render off-screen to this PNG and exit")
    p.add_argument("--size", type=_parse_size, default=(800, 800), metavar="WxH", help="window/image size")
    p.add_argument("--yaw", type=float, default=0.0, metavar="DEG", help="head yaw (+ turns the nose to the right)")
    p.add_argument("--pitch", type=float, default=0.0, metavar="DEG", help="head pitch (+ tilts the nose down)")
    p.add_argument("--texture", choices=("completed", "visible"), default="completed")
    p.add_argument("--wireframe", action="store_true")
    p.add_argument("--normals", action="store_true")
    p.add_argument("--landmarks", action="store_true")
    p.add_argument("--backdrop", choices=BACKDROPS, default="off", help="show the input photo")
    p.add_argument("--view", choices=("front", "photo"), default="front", help="initial view")
    p.add_argument("--out", type=Path, help="where to write the reconstruction of an image (default: a temp folder)")
    p.add_argument("--shots-dir", type=Path, default=Path("."), help="folder for S-key screenshots")
    p.add_argument("--quit-after", type=float, metavar="SECONDS", help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if args.path is None and not args.demo:
        parser.print_usage(sys.stderr)
        print("error: PATH is required (or --demo)", file=sys.stderr)
        return 2
    if not (np.isfinite(args.yaw) and np.isfinite(args.pitch)):
        print("error: --yaw and --pitch must be finite numbers of degrees", file=sys.stderr)
        return 2
    try:
        _o3d.import_open3d()
    except BackendUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tmp: tempfile.TemporaryDirectory[str] | None = None
    try:
        if args.demo:
            tmp = tempfile.TemporaryDirectory(prefix="recon3d_demo_")
            path = write_demo_folder(tmp.name)
        else:
            path = args.path
            if not path.exists():
                print(f"error: {path} does not exist", file=sys.stderr)
                return 2
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                out = args.out
                if out is None:
                    tmp = tempfile.TemporaryDirectory(prefix="recon3d_view_")
                    out = Path(tmp.name) / path.stem
                path = _reconstruct_image(path, out)
            elif path.is_file() and path.suffix.lower() not in MESH_SUFFIXES:
                print(f"error: {path}: expected a folder, {'/'.join(MESH_SUFFIXES)} or an image", file=sys.stderr)
                return 2
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scene = load_scene(path)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        state = ViewState(texture=args.texture, wireframe=args.wireframe, normals=args.normals,
                          landmarks=args.landmarks, backdrop=args.backdrop, view=args.view,
                          yaw=args.yaw, pitch=args.pitch)
        if args.screenshot is not None:
            render_screenshot(scene, args.screenshot, size=args.size, state=state)
            print(f"saved {args.screenshot}")
            return 0
        viewer = FaceViewer(scene, size=args.size, visible=True, state=state, interactive=True,
                            shots_dir=args.shots_dir)
        print(f"recon3d viewer: {scene.name} ({scene.mesh.n_verts} vertices, {scene.mesh.n_faces} faces)")
        print("keys:\n" + keys_text(), flush=True)
        try:
            viewer.run(quit_after=args.quit_after)
        finally:
            viewer.close()
        print("viewer closed", flush=True)
        return 0
    except BackendUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1 if "reconstruction" in str(e) else 2
    except Recon3DError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
