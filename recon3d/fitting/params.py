"""Parameter, configuration and result dataclasses of the 3DMM fitter (STYLE.md §5)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from .._checks import check_shapes
from ..camera import Camera, intrinsics_from_fov
from ..morphable.model import MorphableModel

__all__ = ["FaceParams", "FitConfig", "FitResult", "DEFAULT_FOV_DEG", "DEFAULT_CONFIG", "default_intrinsics"]

#: Default horizontal field of view (degrees) assumed for a photo whose camera is unknown.
#: 20 degrees: a portrait/selfie crop where the face spans roughly half the image width puts the
#: head about 0.45-0.9 m from the camera, which is what such photos are. Much wider (60 degrees,
#: the full frame of a phone) exaggerates perspective for a crop; much narrower makes depth
#: meaningless (orthographic). See docs/FITTING.md.
DEFAULT_FOV_DEG = 20.0


def default_intrinsics(image_size: tuple[int, int], batch: int = 1, *, fov_deg: float = DEFAULT_FOV_DEG,
                       dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """``K (B, 3, 3)`` for an image of ``(H, W)`` pixels with the default field of view.

    The horizontal FOV applies to the longer image side, so portrait and landscape crops of
    the same photo get the same focal length in pixels.

    >>> K = default_intrinsics((200, 100))
    >>> round(K[0, 0, 0].item(), 2), K[0, 0, 2].item(), K[0, 1, 2].item()
    (567.13, 49.5, 99.5)
    """
    H, W = image_size
    side = max(H, W)
    K = intrinsics_from_fov(fov_deg, (side, side), batch, dtype=dtype, device=device)
    K[:, 0, 2] = (W - 1) / 2.0
    K[:, 1, 2] = (H - 1) / 2.0
    return K


@dataclass(frozen=True)
class FaceParams:
    """All parameters of one fitted face, batch-first.

    Attributes:
        shape: ``(B, S)`` identity coefficients (N(0, 1) prior; S may be fewer than the model's).
        expr: ``(B, E)`` expression coefficients (N(0, 1) prior).
        albedo: ``(B, T)`` albedo coefficients (N(0, 1) prior).
        rot: ``(B, 3)`` axis-angle of ``R_cam_from_model`` (radians).
        trans: ``(B, 3)`` translation ``t`` of ``x_cam = R x_model + t`` (metres).
        light: ``(B, 9, 3)`` second-order spherical-harmonics light per RGB channel, camera frame
            (the convention of :func:`recon3d.render.sh_shading`).
    """

    shape: torch.Tensor
    expr: torch.Tensor
    albedo: torch.Tensor
    rot: torch.Tensor
    trans: torch.Tensor
    light: torch.Tensor

    def __post_init__(self) -> None:
        check_shapes("FaceParams()", shape=(self.shape, "B S"), expr=(self.expr, "B E"), albedo=(self.albedo, "B T"),
                     rot=(self.rot, "B 3"), trans=(self.trans, "B 3"), light=(self.light, "B 9 3"))

    @property
    def batch_size(self) -> int:
        return self.rot.shape[0]

    @staticmethod
    def zeros(model: MorphableModel, batch: int = 1, *, n_shape: int | None = None, n_expr: int | None = None,
              n_albedo: int | None = None, depth_m: float = 0.6) -> "FaceParams":
        """Mean face, frontal, ``depth_m`` in front of the camera, ambient white light (uniform shading 1)."""
        dt, dev = model.mean.dtype, model.device
        S = model.n_shape if n_shape is None else min(n_shape, model.n_shape)
        E = model.n_expr if n_expr is None else min(n_expr, model.n_expr)
        T = model.n_albedo if n_albedo is None else min(n_albedo, model.n_albedo)
        light = torch.zeros(batch, 9, 3, dtype=dt, device=dev)
        light[:, 0, :] = AMBIENT_DC
        return FaceParams(
            shape=torch.zeros(batch, S, dtype=dt, device=dev),
            expr=torch.zeros(batch, E, dtype=dt, device=dev),
            albedo=torch.zeros(batch, T, dtype=dt, device=dev),
            rot=torch.tensor([math.pi, 0.0, 0.0], dtype=dt, device=dev).expand(batch, 3).clone(),
            trans=torch.tensor([0.0, 0.0, depth_m], dtype=dt, device=dev).expand(batch, 3).clone(),
            light=light,
        )

    def to(self, device: torch.device | str) -> "FaceParams":
        return FaceParams(*(getattr(self, n).to(device) for n in _PARAM_FIELDS))

    def detach(self) -> "FaceParams":
        return FaceParams(*(getattr(self, n).detach() for n in _PARAM_FIELDS))

    def index(self, i: int | slice) -> "FaceParams":
        """Sub-batch ``i`` (kept batched: an int gives B = 1)."""
        sl = slice(i, i + 1) if isinstance(i, int) else i
        return FaceParams(*(getattr(self, n)[sl] for n in _PARAM_FIELDS))


_PARAM_FIELDS = ("shape", "expr", "albedo", "rot", "trans", "light")
#: First SH light coefficient giving uniform shading 1 with :func:`recon3d.render.sh_shading`
#: (``1 / (a0 c0) = sqrt(4 pi) / pi``; the same as ``recon3d.render.ambient_light``).
AMBIENT_DC = math.sqrt(4.0 * math.pi) / math.pi


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`recon3d.fitting.fit` (frozen; pass explicitly, build variants with
    :func:`dataclasses.replace`).

    Landmark stage (Levenberg-Marquardt):
        lmk_iters: LM iterations (the jaw contour is re-selected at each).
        lmk_huber_px: Huber threshold of the landmark residual, in pixels of a face whose
            landmark box diagonal is 200 px (residuals are normalised by face size).
        dynamic_contour: jaw landmarks slide along the occluding contour (2-D annotations such
            as dlib's and 300-W's); False: fixed jaw points, for landmarks in the 3-D convention
            of AFLW2000-3D (recon3d's own regressor, ``detector="recon3d"``).
        w_lmk: landmark weight. w_reg_shape / w_reg_expr: weights of the N(0, 1) Gaussian priors
            on the coefficients during the landmark stage (relative to the normalised landmark
            term, i.e. roughly (landmark noise in reference pixels)^2 / 68).
        n_shape / n_expr / n_albedo: leading components optimised (None: all of the model's).
        fov_deg: horizontal FOV of the default camera (see :data:`DEFAULT_FOV_DEG`).

    Photometric stage (Adam on a crop):
        photo: run the photometric stage at all.
        photo_iters, photo_lr: Adam iterations and base learning rate.
        photo_res: side of the square face crop the fit renders (pixels).
        crop_scale: crop side / landmark-box side.
        w_photo: photometric weight; w_lmk_photo: landmark weight during the photometric stage
            (the landmark loss is in squared reference-face pixels, the photometric one in squared
            RGB units, hence the small number); w_reg_photo: N(0, 1) prior weight of shape and
            expression during the photometric stage; w_reg_albedo: the albedo prior's.
        robust: ``"gm"`` (Geman-McClure on the per-pixel colour distance, scale from the median
            residual) or ``"l2"`` (plain squared error; for comparison).
        robust_scale: Geman-McClure scale in units of the robust sigma (1.4826 * median).
        light_reg: ridge weight of the least-squares SH initialisation towards ambient white.
        photo_antialias: antialias the rendered silhouette (gives the outline pixels gradients;
            the face-region weight is ~0 at the outline, so the default skips it: 30 % faster).
    """

    lmk_iters: int = 12
    lmk_huber_px: float = 4.0
    dynamic_contour: bool = True
    w_lmk: float = 1.0
    w_reg_shape: float = 0.02
    w_reg_expr: float = 0.02
    w_reg_albedo: float = 1e-4
    n_shape: int | None = 40
    n_expr: int | None = 20
    n_albedo: int | None = 40
    fov_deg: float = DEFAULT_FOV_DEG
    photo: bool = True
    photo_iters: int = 20
    photo_lr: float = 0.05
    photo_res: int = 128
    crop_scale: float = 1.4
    w_photo: float = 1.0
    w_lmk_photo: float = 1e-3
    w_reg_photo: float = 1e-4
    robust: str = "gm"
    robust_scale: float = 3.0
    light_reg: float = 1e-2
    photo_antialias: bool = False
    tol: float = 1e-6

    def __post_init__(self) -> None:
        if self.robust not in ("gm", "l2"):
            raise ValueError(f"FitConfig(): robust must be 'gm' or 'l2', got {self.robust!r}")
        for name in ("lmk_iters", "photo_iters", "photo_res"):
            if getattr(self, name) < 0:
                raise ValueError(f"FitConfig(): {name} must be >= 0, got {getattr(self, name)}")

    @staticmethod
    def fast() -> "FitConfig":
        """Fewer iterations and a 96-pixel crop: about 1.7x faster than the default, less detail."""
        return FitConfig(lmk_iters=8, photo_iters=12, photo_res=96, photo_lr=0.06)

    @staticmethod
    def thorough() -> "FitConfig":
        """50 photometric iterations on a 160-pixel crop with antialiased silhouettes (the default
        before 2026-11-30): about 3x slower; albedo and light explain the photo slightly better
        (photometric L1 0.0559 vs 0.0574 on AFLW2000-3D images), landmarks and pose the same."""
        return FitConfig(photo_iters=50, photo_res=160, photo_lr=0.03, photo_antialias=True)

    def replace(self, **kw) -> "FitConfig":
        return replace(self, **kw)


@dataclass(frozen=True)
class FitResult:
    """Output of the fitter.

    Attributes:
        params: the fitted :class:`FaceParams`.
        camera: pinhole :class:`~recon3d.camera.Camera` (K, R_cam_from_model, t, image size) of the
            full input image.
        verts_model: ``(B, V, 3)`` fitted vertices, model frame, metres.
        verts_cam: ``(B, V, 3)`` the same in the camera frame.
        lmk_px: ``(B, 68, 2)`` fitted landmarks (with the dynamic jaw contour) in image pixels.
        pose_deg: ``(B, 3)`` head pose (yaw, pitch, roll) in degrees (see recon3d.conventions).
        face_mask: ``(B, H, W)`` rendered face-region weight in [0, 1] at full image resolution, or
            ``None`` when no photometric stage ran.
        losses: per stage/term loss history (batch mean per iteration).
        n_iters: total iterations run.
        converged: whether the landmark stage met its tolerance.
        timings: seconds per stage.
        contour_idx: ``(B, 17)`` model vertex used for each jaw landmark (-1: static embedding).
    """

    params: FaceParams
    camera: Camera
    verts_model: torch.Tensor
    verts_cam: torch.Tensor
    lmk_px: torch.Tensor
    pose_deg: torch.Tensor
    face_mask: torch.Tensor | None = None
    losses: dict = field(default_factory=dict)
    n_iters: int = 0
    converged: bool = False
    timings: dict = field(default_factory=dict)
    contour_idx: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "FitResult":
        def mv(t):
            return None if t is None else t.to(device)

        return replace(self, params=self.params.to(device), camera=self.camera.to(device),
                       verts_model=self.verts_model.to(device), verts_cam=self.verts_cam.to(device),
                       lmk_px=self.lmk_px.to(device), pose_deg=self.pose_deg.to(device),
                       face_mask=mv(self.face_mask), contour_idx=mv(self.contour_idx))

    def detach(self) -> "FitResult":
        def dt(t):
            return None if t is None else t.detach()

        return replace(self, params=self.params.detach(), camera=self.camera.detach(),
                       verts_model=self.verts_model.detach(), verts_cam=self.verts_cam.detach(),
                       lmk_px=self.lmk_px.detach(), pose_deg=self.pose_deg.detach(), face_mask=dt(self.face_mask))


#: The default configuration (frozen, so sharing one instance as an argument default is safe).
DEFAULT_CONFIG = FitConfig()
