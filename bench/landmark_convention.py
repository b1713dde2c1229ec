"""How much of the AFLW2000-3D landmark error is a difference of landmark *definition*?

    python bench/landmark_convention.py DATA_DIR [--limit N] [--folds 2] [--threads 1]
        [--detector recon3d] [--save-offsets offsets.npz]

recon3d's 68 landmarks are points on its own mesh (``MorphableModel.lmk_faces/lmk_bary``), placed
where 300-W's annotators put them. AFLW2000-3D's ``pt3d_68`` are fixed vertices of another model
(the BFM keypoints of 3DDFA's fits), so even a perfect reconstruction would not reproduce them
exactly. This script measures that part of the error:

1. every image is detected and fitted (landmark stage only, 3-D convention: fixed jaw points);
2. on all but one fold, a 3-D offset per landmark in the model frame (metres) is solved by linear
   least squares (the projection linearised at the fitted landmark), i.e. the landmark
   definition that best matches the dataset's;
3. on the held-out fold, the fitted model's landmarks are re-projected with the offsets applied.

Printed: NME (sqrt(w*h) of the ground-truth box, as bench/aflw2000.py) with recon3d's own
definition and with the cross-validated offsets, overall and per |yaw| bin, plus the mean offset
per landmark group in millimetres. Images without a detection are left out of both columns (their
count is printed). The offsets are *not* used by the pipeline: they are fitted on the evaluation
data, so the cross-validated column is a diagnosis, not a result on unseen data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from recon3d.ops.metrics import nme

GROUPS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
          "mouth": range(48, 68)}
BINS = ((0, 30), (30, 60), (60, 90))


def _project(X_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, L, 3) camera-frame points -> (N, L, 2) pixels, K (N, 3, 3)."""
    p = np.einsum("nij,nlj->nli", K, X_cam)
    return p[..., :2] / p[..., 2:3]


def _jacobian(X_cam: np.ndarray, K: np.ndarray, R: np.ndarray) -> np.ndarray:
    """d pixel / d model-frame offset at each landmark: (N, L, 2, 3)."""
    x, y, z = X_cam[..., 0], X_cam[..., 1], X_cam[..., 2]
    fx, fy = K[:, 0, 0][:, None], K[:, 1, 1][:, None]
    J = np.zeros(X_cam.shape[:2] + (2, 3))
    J[..., 0, 0] = fx / z
    J[..., 0, 2] = -fx * x / z ** 2
    J[..., 1, 1] = fy / z
    J[..., 1, 2] = -fy * y / z ** 2
    return np.einsum("nlij,njk->nlik", J, R)


def solve_offsets(X_cam, K, R, gt, scale, ridge: float = 1e-9) -> np.ndarray:
    """Per-landmark model-frame offsets (L, 3) minimising the scale-normalised reprojection error."""
    J = _jacobian(X_cam, K, R) / scale[:, None, None, None]
    r = (gt - _project(X_cam, K)) / scale[:, None, None]
    A = np.einsum("nlik,nlim->lkm", J, J) + ridge * np.eye(3)
    b = np.einsum("nlik,nli->lk", J, r)
    return np.linalg.solve(A, b[..., None])[..., 0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--detector", default="recon3d")
    ap.add_argument("--save-offsets", default=None, help="write the offsets fitted on all images (.npz)")
    ap.add_argument("--alt-model", nargs="*", default=[], metavar="NPZ",
                    help="models with the same mesh and another landmark embedding (e.g. from "
                    "tools/learn_jaw_embedding.py): the same fits scored with their landmarks, one row each")
    args = ap.parse_args(argv)
    if args.folds < 2:
        ap.error("--folds must be >= 2")

    import scipy.io as sio
    import torch
    from tqdm import tqdm

    from recon3d.detect import detect_faces
    from recon3d.fitting import FitConfig
    from recon3d.io import load_image
    from recon3d.reconstruct import ReconstructConfig, reconstruct_all

    torch.set_num_threads(args.threads)
    imgs = sorted(Path(args.data_dir).glob("*.jpg"))
    if args.limit:
        imgs = imgs[: args.limit]
    if not imgs:
        print(f"no *.jpg in {args.data_dir}", file=sys.stderr)
        return 2
    cfg = ReconstructConfig(fit=FitConfig(photo=False, dynamic_contour=False), photometric=False, texture_size=64)
    Xs, Ks, Rs, gts, yaws, missing = [], [], [], [], [], 0
    model = None
    from recon3d.morphable import load_model

    alts = [load_model(a) for a in args.alt_model]
    Xalt: list[list[np.ndarray]] = [[] for _ in alts]
    for p in tqdm(imgs, desc="fit", unit="img"):
        mat = sio.loadmat(p.with_suffix(".mat"))
        loaded = load_image(p)
        dets = detect_faces(loaded.image, backend=args.detector)
        if not dets:
            missing += 1
            continue
        rec = reconstruct_all(loaded, landmarks=dets[0].lmk_px, landmarks_3d=dets[0].landmarks_3d, config=cfg)[0]
        model = rec.model
        f = rec.fit
        X_model = model.landmarks(f.verts_model)[0]
        Xs.append(f.camera.to_cam(X_model[None])[0].double().numpy())
        for a, xa in zip(alts, Xalt, strict=True):
            if a.mean.shape != model.mean.shape:
                print(f"error: --alt-model {a.name} has {a.mean.shape[0]} vertices, the fitted model "
                      f"{model.mean.shape[0]}", file=sys.stderr)
                return 2
            xa.append(f.camera.to_cam(a.landmarks(f.verts_model)[0][None])[0].double().numpy())
        Ks.append(f.camera.K[0].double().numpy())
        Rs.append(f.camera.R[0].double().numpy())
        gts.append(mat["pt3d_68"][:2].T.astype(np.float64))
        yaws.append(abs(float(np.degrees(mat["Pose_Para"][0][1]))))
    X, K, R, gt, yaw = (np.stack(a) for a in (Xs, Ks, Rs, gts, yaws))
    lo, hi = gt.min(1), gt.max(1)
    scale = np.sqrt(np.prod(hi - lo, axis=-1))

    raw = nme(_project(X, K), gt)
    adapted = np.empty_like(raw)
    fold = np.arange(len(X)) % args.folds
    for k in range(args.folds):
        tr, te = fold != k, fold == k
        d = solve_offsets(X[tr], K[tr], R[tr], gt[tr], scale[tr])
        Xa = X[te] + np.einsum("nij,lj->nli", R[te], d)
        adapted[te] = nme(_project(Xa, K[te]), gt[te])
    d_all = solve_offsets(X, K, R, gt, scale)

    print(f"\nlandmark definition check on {args.data_dir}: {len(X)} images fitted, {missing} without a detection "
          f"(left out), {args.folds}-fold cross-validation of per-landmark 3-D offsets")
    head = f"{'NME (%)':<34}{'all':>7}" + "".join(f"{f'[{a},{b}]':>10}" for a, b in BINS)
    print(head)
    rows = [("recon3d landmark definition", raw)]
    rows += [(f"--alt-model {Path(a).name}", nme(_project(np.stack(xa), K), gt)) for a, xa in zip(args.alt_model, Xalt, strict=True)]
    rows.append(("dataset-fitted offsets (held out)", adapted))
    for name, v in rows:
        cells = [v.mean()] + [v[(yaw <= b) & ((yaw > a) | (a == 0))].mean() for a, b in BINS]
        print(f"{name:<34}" + "".join(f"{c * 100:>{7 if i == 0 else 10}.2f}" for i, c in enumerate(cells)))
    print("mean offset per group (all images, mm): "
          + ", ".join(f"{g} {np.linalg.norm(d_all[list(r)], axis=1).mean() * 1000:.1f}" for g, r in GROUPS.items()))
    if args.save_offsets:
        np.savez(args.save_offsets, offsets_m=d_all.astype(np.float32), model=np.str_(model.name if model else ""),
                 data=np.str_(str(args.data_dir)), n_images=len(X))
        print(f"offsets written to {args.save_offsets} (fitted on this data: not for evaluation on it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
