"""Large-pose training views synthesized from one photo with 68 landmarks (the 300W-LP recipe).

For every source photo (3DDFA's "face profiling", Zhu et al. CVPR 2016, made with our own parts):

1. The morphable model is fitted to the photo's ground-truth 68 landmarks
   (:func:`recon3d.fitting.fit_landmarks`).
2. Each model vertex gets a *source position* in the photo: its own projection where it is
   visible (depth test against the rendered face, facing the camera), else the projection of its
   mirror vertex (``model.sym_vertex``) when that one is visible, so a cheek that turns into view
   shows the other cheek's skin.
3. The whole photo is meshed around the face (:func:`recon3d.ops.anchors.image_anchors`: the face
   outline, rings of anchors that follow the head with falling weights, fixed image-border points).
4. For each target head pose the face is rotated about a head centre behind the face, the anchors
   move with it, and face plus background mesh are rasterised straight into a square crop
   (supersampled, then area-averaged); every crop pixel samples the photo bilinearly at its
   interpolated source position. The face wins every depth test against the background.
5. Labels are exact: the 68 landmarks are the model's fixed landmark points (the 3-D convention
   of AFLW2000-3D: jaw points stay on the jaw even when hidden) plus the photo's annotation offset
   lifted to 3-D (for the jaw only when the photo is near frontal, where the annotated outline
   and the 3-D jaw coincide), rotated and projected into the crop; the head pose is the target pose.

The crop is the square :data:`~recon3d.ops.crop.LANDMARK_CROP_SCALE` (1.5) times the larger side of the
2-D landmark box (:func:`~recon3d.ops.crop.crop_box_from_landmarks`), jittered in centre and size, the
same rule :mod:`recon3d.nn.landmarks` uses at inference. The set on disk (one ``.npz`` per photo) is
written and read by :mod:`recon3d.data.landmark_set`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..camera import axis_angle_to_matrix, matrix_to_pose_angles, pose_angles_to_matrix
from ..errors import ShapeError
from ..fitting import FitConfig, default_intrinsics, fit_landmarks
from ..ops.anchors import head_centre, image_anchors, project_to_pixels
from ..ops.crop import LANDMARK_CROP_SCALE, crop_box_from_landmarks
from ..ops.geometry import mesh_boundary_vertices, vertex_normals
from ..ops.sampling import bilinear_sample
from ..render import interpolate, rasterize, rasterize_px

__all__ = ["SynthViews", "synthesize_views", "sample_poses"]

_JAW = slice(0, 17)


@dataclass(frozen=True)
class SynthViews:
    """Views synthesized from one photo.

    Attributes:
        images: ``(N, S, S, 3)`` uint8 crops.
        lmk: ``(N, 68, 2)`` float32 landmarks, crop pixels (0-based pixel centres).
        lmk_z: ``(N, 68)`` float32 landmark depth relative to their mean, in crop pixels (the same
            scale as x and y; larger is further from the camera).
        pose_deg: ``(N, 3)`` float32 head pose (yaw, pitch, roll), :mod:`recon3d.conventions`.
        box: ``(N, 4)`` float32 crop box ``[x0, y0, x1, y1]`` in the rotated photo's pixels.
        source_pose_deg: ``(3,)`` the fitted pose of the photo itself.
    """

    images: np.ndarray
    lmk: np.ndarray
    lmk_z: np.ndarray
    pose_deg: np.ndarray
    box: np.ndarray
    source_pose_deg: np.ndarray


def sample_poses(rng: np.random.Generator, n: int, *, max_yaw: float = 90.0, pitch_sd: float = 12.0,
                 roll_sd: float = 12.0) -> np.ndarray:
    """``(n, 3)`` target poses (yaw, pitch, roll) in degrees: yaw uniform in ``±max_yaw`` with
    extra weight beyond 45 degrees, pitch and roll normal (clipped at 2.5 SD).

    >>> sample_poses(np.random.default_rng(0), 4).shape
    (4, 3)
    """
    yaw = rng.uniform(-max_yaw, max_yaw, n)
    big = rng.random(n) < 0.35
    yaw[big] = np.sign(yaw[big]) * rng.uniform(45.0, max_yaw, int(big.sum()))
    pitch = np.clip(rng.normal(0, pitch_sd, n), -2.5 * pitch_sd, 2.5 * pitch_sd)
    roll = np.clip(rng.normal(0, roll_sd, n), -2.5 * roll_sd, 2.5 * roll_sd)
    return np.stack([yaw, pitch, roll], 1)


def _smooth_on_mesh(x: np.ndarray, faces: np.ndarray, iters: int) -> np.ndarray:
    """Average a per-vertex scalar with its one-ring neighbours ``iters`` times."""
    import scipy.sparse as sp

    n = len(x)
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    A = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    A.data[:] = 1.0
    A = A + sp.identity(n, format="csr")
    A = sp.diags(1.0 / np.asarray(A.sum(1)).ravel()) @ A
    for _ in range(iters):
        x = A @ x
    return x


class _Source:
    """Pose-independent state for one photo."""

    def __init__(self, image: np.ndarray, lmk: np.ndarray, model, fit_iters: int, size: int):
        # Downscale the photo so that a crop maps about 1:1.2 to its pixels: one bilinear sample
        # per crop pixel is then free of aliasing, and the fit and the depth test are cheaper.
        side0 = LANDMARK_CROP_SCALE * float(max(lmk.max(0) - lmk.min(0)))
        f = min(1.0, 1.2 * size / max(side0, 1.0))
        if f < 0.95:
            from PIL import Image

            h, w = image.shape[:2]
            nw, nh = max(int(round(w * f)), 8), max(int(round(h * f)), 8)
            u8 = Image.fromarray(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8))
            image = np.asarray(u8.resize((nw, nh), Image.Resampling.BOX), dtype=np.float32) / 255.0
            lmk = (lmk + 0.5) * np.array([nw / w, nh / h]) - 0.5
        self.image = image
        H, W = image.shape[:2]
        self.H, self.W = H, W
        K = default_intrinsics((H, W))
        fit = fit_landmarks(torch.from_numpy(lmk.astype(np.float32))[None], model=model, K=K,
                            config=FitConfig(lmk_iters=fit_iters))
        self.K = K[0]
        R = axis_angle_to_matrix(fit.params.rot)[0]
        t = fit.params.trans[0]
        self.R = R
        self.ypr0 = matrix_to_pose_angles(R[None].double())[0].float()
        vm = fit.verts_model[0]
        vc = fit.verts_cam[0]
        self.verts_cam = vc
        faces = model.faces
        self.faces = faces
        # --- landmarks: fixed model points + lifted annotation offsets ---------------------------
        X = model.landmarks(vm[None])[0] @ R.T + t
        p = self.project(X)
        d = lmk - p
        yaw0 = abs(math.degrees(float(self.ypr0[0])))
        d[_JAW] *= max(0.0, 1.0 - yaw0 / 25.0)
        z = X[:, 2].numpy().astype(np.float64)
        fx, fy = float(self.K[0, 0]), float(self.K[1, 1])
        off = np.stack([d[:, 0] * z / fx, d[:, 1] * z / fy, np.zeros(68)], 1)
        self.lmk3d = X + torch.from_numpy(off.astype(np.float32))
        # --- per-vertex source position: self if visible, else mirror -----------------------------
        frags = rasterize(vc[None], faces, self.K[None], (H, W))
        zbuf = frags.depth[0].numpy()
        pv = self.project(vc)
        ix = np.clip(np.round(pv[:, 0]).astype(int), 0, W - 1)
        iy = np.clip(np.round(pv[:, 1]).astype(int), 0, H - 1)
        zb = zbuf[iy, ix]
        n = vertex_normals(vc[None], faces)[0].numpy()
        vcn = vc.numpy()
        cos = -(n * vcn).sum(1) / np.linalg.norm(vcn, axis=1).clip(1e-9)  # > 0: faces the camera
        vis = (cos > 0) & (zb > 0) & (vcn[:, 2] <= zb + 0.01)
        sym = model.sym_vertex.numpy()
        # grazing texels are smeared: take the mirror vertex where it is seen more squarely. The
        # preference is smoothed over the mesh so that the switch is one seam, not speckle.
        cs = np.where(vis, cos, -1.0)
        pref = np.minimum(cs, 0.4) - np.minimum(cs[sym], 0.4)
        pref = _smooth_on_mesh(pref, faces.numpy(), 6)
        use_mirror = (pref < -0.05) & vis[sym]
        self.src_xy = np.where(use_mirror[:, None], pv[sym], pv)
        # --- background mesh -----------------------------------------------------------------------
        self.boundary = mesh_boundary_vertices(faces)
        self.anchors = image_anchors(vc, self.boundary, self.K, H, W)
        self.centre = head_centre(vm, R, t)

    def project(self, X: torch.Tensor) -> np.ndarray:
        return project_to_pixels(self.K, X)


def _render_view(src: _Source, ypr_deg: np.ndarray, size: int, supersample: int, rng: np.random.Generator,
                 center_jitter: float, scale_jitter: float):
    ypr = torch.tensor(np.radians(ypr_deg), dtype=torch.float64)
    D = (pose_angles_to_matrix(ypr[None])[0] @ src.R.double().T).float()
    c = src.centre
    v = (src.verts_cam - c) @ D.T + c
    L = (src.lmk3d - c) @ D.T + c
    lmk = src.project(L)
    a = src.anchors
    dst_bg, _ = a.moved(src.K, D, c, v[src.boundary])
    # crop box, jittered
    box = crop_box_from_landmarks(lmk)
    side = (box[2] - box[0]) * float(np.exp(rng.uniform(-scale_jitter, scale_jitter)))
    cx = (box[0] + box[2]) / 2 + rng.uniform(-center_jitter, center_jitter) * side
    cy = (box[1] + box[3]) / 2 + rng.uniform(-center_jitter, center_jitter) * side
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    S = size * supersample
    # image px -> supersampled crop px (pixel centres: crop pixel j covers [j, j+1) * side/S from x0)
    s = S / side

    def to_crop(p):
        return (p - box[:2]) * s - 0.5

    pv = src.project(v)
    verts = np.concatenate([
        np.concatenate([to_crop(pv), v[:, 2:3].numpy()], 1),
        np.concatenate([to_crop(dst_bg), np.full((len(dst_bg), 1), 1e3)], 1),
    ], 0)
    nv = len(pv)
    faces = torch.cat([src.faces, torch.from_numpy(a.tris) + nv], 0)
    attr = torch.from_numpy(np.concatenate([src.src_xy, a.src_all], 0).astype(np.float32))
    frags = rasterize_px(torch.from_numpy(verts.astype(np.float32))[None], faces, (S, S))
    cov = (frags.tri_id[0] >= 0).numpy()
    sxy = interpolate(attr[None], frags, faces)[0].numpy()
    out = np.zeros((S, S, 3), np.float32)
    out[cov] = bilinear_sample(src.image, sxy[cov])
    if supersample > 1:
        out = out.reshape(size, supersample, size, supersample, 3).mean((1, 3))
    lmk_c = (lmk - box[:2]) * (size / side) - 0.5
    z = L[:, 2].numpy().astype(np.float64)
    fpx = float(src.K[0, 0]) / float(z.mean()) * (size / side)  # metres -> crop pixels at the face depth
    lmk_z = (z - z.mean()) * fpx
    return (np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8), lmk_c.astype(np.float32), lmk_z.astype(np.float32),
            box.astype(np.float32))


@torch.no_grad()
def synthesize_views(image: np.ndarray, lmk_px: np.ndarray, model, poses_deg: np.ndarray, *, size: int = 128,
                     supersample: int = 1, seed: int = 0, center_jitter: float = 0.06, scale_jitter: float = 0.1,
                     fit_iters: int = 10, include_source: bool = False) -> SynthViews:
    """Render ``image`` re-posed to each of ``poses_deg`` as ``size``-pixel face crops with labels.

    Args:
        image: ``(H, W, 3)`` float RGB in [0, 1] (or uint8).
        lmk_px: ``(68, 2)`` iBUG-68 landmarks of the photo, 0-based pixels (the ground truth).
        model: a :class:`~recon3d.morphable.MorphableModel` with ``sym_vertex``.
        poses_deg: ``(N, 3)`` absolute target (yaw, pitch, roll) in degrees.
        size: crop side in pixels; ``supersample``: render at this multiple, then average (the
            photo is first downscaled to about 1.2 pixels per crop pixel, so 1 is usually enough).
        seed: crop-jitter seed; ``center_jitter`` / ``scale_jitter``: crop jitter as a fraction of
            the side (uniform) and log-scale (uniform).
        fit_iters: Levenberg-Marquardt iterations of the landmark fit.
        include_source: prepend a view at the photo's own fitted pose.

    Returns:
        :class:`SynthViews`.

    Raises:
        ShapeError: wrong shapes.
    """
    img = np.asarray(image)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    if img.ndim != 3 or img.shape[2] != 3:
        raise ShapeError(f"synthesize_views(): image must be (H, W, 3), got {img.shape}")
    lmk = np.asarray(lmk_px, dtype=np.float64)
    if lmk.shape != (68, 2):
        raise ShapeError(f"synthesize_views(): lmk_px must be (68, 2), got {lmk.shape}")
    poses = np.asarray(poses_deg, dtype=np.float64).reshape(-1, 3)
    src = _Source(img.astype(np.float32), lmk, model, fit_iters, size)
    if include_source:
        poses = np.concatenate([np.degrees(src.ypr0.numpy())[None].astype(np.float64), poses], 0)
    rng = np.random.default_rng(seed)
    outs = [_render_view(src, p, size, supersample, rng, center_jitter, scale_jitter) for p in poses]
    return SynthViews(
        images=np.stack([o[0] for o in outs]) if outs else np.zeros((0, size, size, 3), np.uint8),
        lmk=np.stack([o[1] for o in outs]) if outs else np.zeros((0, 68, 2), np.float32),
        lmk_z=np.stack([o[2] for o in outs]) if outs else np.zeros((0, 68), np.float32),
        pose_deg=poses.astype(np.float32),
        box=np.stack([o[3] for o in outs]) if outs else np.zeros((0, 4), np.float32),
        source_pose_deg=np.degrees(src.ypr0.numpy()).astype(np.float32),
    )
