"""AFLW2000-3D benchmark of the reconstruct pipeline.

    python bench/aflw2000.py ../shared/aflw2000-3d-dev [--limit N] [--fast] [--no-photometric]
        [--detector dlib recon3d] [--json out.json] [--reannotated PTS.npz]

With several ``--detector`` backends every image is run through each of them in the same run and
the tables are printed side by side (one column block per backend).

For every ``*.jpg`` with its ``.mat`` (``pt3d_68`` 3x68 image pixels y down, ``Pose_Para`` [pitch,
yaw, roll (rad), tx, ty, tz, scale]) it runs detection + fitting and reports

* 68-point NME normalised by sqrt(w*h) of the ground-truth landmark box (x, y of ``pt3d_68``), of the
  detector's landmarks and of the fitted model's re-projected landmarks, overall and per |yaw| bin
  [0,30], (30,60], (60,90] degrees (yaw from ``Pose_Para``). Images with no result are counted as
  failures (listed, never silently dropped) and excluded from the NME means, which are reported
  with the failure count beside them. The ``recon3d`` backend's landmarks are in AFLW2000-3D's own
  3-D convention and its fit uses fixed jaw points; dlib's follow the visible outline;
* the same two NMEs against a second ground truth, AFLW2000-3D's re-annotated 68 points
  (``reannotated_pts68.npz`` in DATA_DIR, or ``--reannotated``: ``names`` (N,) image stems,
  ``pts68`` (N, 2, 68) x, y image pixels, used as they are, like ``pt3d_68``). ``pt3d_68`` are BFM
  vertices from 3DDFA's fits; the re-annotated points follow manual annotation, so the gap between
  the two columns is landmark definition, not error. Normalisation and bins are identical: the
  error to the re-annotated points is divided by the same sqrt(w*h) of the ``pt3d_68`` box, and the
  |yaw| bin comes from ``Pose_Para``. (The NME against the re-annotated points normalised by their
  own box is printed on one extra line and written to ``--json``.) Images the npz lacks are counted
  and left out of this column only;
* head-pose MAE (yaw, pitch, roll, degrees) against ``Pose_Para``. Angle convention mapping
  (:func:`aflw_to_recon3d_ypr`): AFLW2000 (3DDFA) composes its rotation as Rx(pitch) Ry(yaw) Rz(roll)
  in a y-up frame; recon3d (docs/CONVENTIONS.md) as Rz(roll) Ry(yaw) Rx(pitch) in its OpenCV frame,
  where all three angles have the opposite sign. The ground-truth rotation is therefore rebuilt
  from AFLW's angles in AFLW's order with the signs flipped and decomposed in recon3d's order. Near
  frontal this is the sign flip (``AFLW_SIGN``); beyond 45° yaw the orders differ by several
  degrees. The mapping was chosen on the dev split among all orders and signs (lowest MAE); the
  correlation of each mapped angle is printed as a check. The geodesic angle between the two
  rotations (order-free) is printed too: near ±90° yaw, pitch and roll are ill-conditioned in any
  Euler order;
* head-pose MAE under the head-pose papers' AFLW2000 protocol (Hopenet, FSA-Net, 6DRepNet, whose
  numbers the issues quote as anchors): errors in AFLW's *own* Euler convention, the prediction
  mapped into it by :func:`recon3d_to_aflw_ypr` and the labels used as they are, on the images whose
  three ground-truth angles all lie within ±99° (:func:`standard_pose_mae`; the papers leave out 31
  of the 2,000). The convention matters beyond 60° of yaw, where the same rotation error splits
  differently into pitch and roll in the two orders; the ``pose MAE`` line above is recon3d's
  convention on every image;
* the thesis Table 4.2 protocol: L1 and SSIM between the input and the rendered reconstruction
  inside the rendered face region (non-face areas masked out; SSIM averaged over face pixels).

Runs on any split with the same file layout (the held-out one included).

``--json OUT`` writes ``{backend: [row, ...]}``, one row per image: ``name``, ``ok`` (a result was
found), ``yaw_bin``, ``gt_ypr`` (AFLW's yaw, pitch, roll, degrees) and ``gt_ypr_recon3d`` (mapped),
``ypr`` / ``ypr_det`` (predicted pose, recon3d convention), ``gt_pt3d_px`` / ``gt_re_px`` and
``lmk_det_px`` / ``lmk_fit_px`` (68 x 2, image pixels, 0-based, x right, y down; ``gt_re_px`` is
null where the npz lacks the image), ``nme_det`` / ``nme_fit`` (vs ``pt3d_68``) and ``nme_det_re``
/ ``nme_fit_re`` (vs the re-annotated points, ``pt3d_68`` box) and ``*_re_ownbox``, timings and the
Table 4.2 numbers. ``--from-json`` re-prints the tables from such a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from recon3d.ops import metrics

#: recon3d (yaw, pitch, roll) = AFLW_SIGN * AFLW (yaw, pitch, roll); see the module docstring.
AFLW_SIGN = np.array([-1.0, -1.0, -1.0])


def aflw_to_recon3d_ypr(gt_ypr_deg: np.ndarray) -> np.ndarray:
    """AFLW2000 (yaw, pitch, roll) degrees ``(N, 3)`` to recon3d's (see the module docstring)."""
    from scipy.spatial.transform import Rotation

    g = np.radians(np.asarray(gt_ypr_deg, dtype=np.float64).reshape(-1, 3)) * AFLW_SIGN
    R = Rotation.from_euler("XYZ", np.stack([g[:, 1], g[:, 0], g[:, 2]], 1))  # Rx(p) Ry(y) Rz(r)
    zyx = R.as_euler("ZYX")  # R = Rz(roll) Ry(yaw) Rx(pitch)
    return np.degrees(np.stack([zyx[:, 1], zyx[:, 2], zyx[:, 0]], 1))


def abs_angle_diff_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b|`` in degrees, wrapped at 360 (so 179 and -179 are 2 apart)."""
    err = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return np.minimum(err, 360 - err)


def recon3d_to_aflw_ypr(ypr_deg: np.ndarray) -> np.ndarray:
    """The inverse of :func:`aflw_to_recon3d_ypr`: recon3d (yaw, pitch, roll) degrees ``(N, 3)`` to
    AFLW2000's own convention (Rx(pitch) Ry(yaw) Rz(roll), y up)."""
    from scipy.spatial.transform import Rotation

    y = np.radians(np.asarray(ypr_deg, dtype=np.float64).reshape(-1, 3))
    R = Rotation.from_euler("ZYX", np.stack([y[:, 2], y[:, 0], y[:, 1]], 1))  # Rz(r) Ry(y) Rx(p)
    xyz = R.as_euler("XYZ")  # pitch, yaw, roll in AFLW's order
    return np.degrees(np.stack([xyz[:, 1], xyz[:, 0], xyz[:, 2]], 1) * AFLW_SIGN)


#: The head-pose papers' AFLW2000 protocol (Hopenet, FSA-Net, 6DRepNet) keeps the images whose three
#: ground-truth angles all lie within +-99 degrees (31 of the 2,000 are left out).
STANDARD_POSE_LIMIT_DEG = 99.0


def standard_pose_mae(pred_recon3d: np.ndarray, gt_aflw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image absolute (yaw, pitch, roll) errors in AFLW2000's own Euler convention (the
    prediction mapped into it, the labels as they are) and the mask of images the papers' protocol
    keeps (all |ground-truth angles| <= :data:`STANDARD_POSE_LIMIT_DEG`). Returns ``(err (N, 3), keep
    (N,))``; errors wrap at 360 degrees."""
    gt = np.asarray(gt_aflw, dtype=np.float64).reshape(-1, 3)
    err = abs_angle_diff_deg(recon3d_to_aflw_ypr(pred_recon3d), gt)
    keep = (np.abs(gt) <= STANDARD_POSE_LIMIT_DEG).all(1)
    return err, keep


def geodesic_deg(ypr_a: np.ndarray, ypr_b: np.ndarray) -> np.ndarray:
    """Angle of R_a^T R_b for recon3d-convention angles ``(N, 3)`` degrees."""
    from scipy.spatial.transform import Rotation

    def rot(y):
        y = np.radians(np.asarray(y, dtype=np.float64).reshape(-1, 3))
        return Rotation.from_euler("ZYX", np.stack([y[:, 2], y[:, 0], y[:, 1]], 1))

    return np.degrees((rot(ypr_a).inv() * rot(ypr_b)).magnitude())
BINS = [(0, 30), (30, 60), (60, 90)]


def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean point-to-point error / sqrt(w*h) of the GT landmark box (:func:`recon3d.ops.metrics.nme`;
    the box area is clamped at 1e-6 px^2, as this benchmark always did)."""
    return float(metrics.nme(pred, gt, eps=1e-6))


def nme_box_of(pred: np.ndarray, gt: np.ndarray, box_gt: np.ndarray) -> float:
    """Like :func:`nme` but normalised by the box of ``box_gt`` (the same ``pt3d_68`` box for both
    ground-truth columns)."""
    w, h = np.ptp(np.asarray(box_gt, dtype=np.float64), axis=0)
    err = np.linalg.norm(np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64), axis=-1)
    return float(err.mean() / np.sqrt(max(w * h, 1e-6)))


def load_reannotated(path: Path) -> dict[str, np.ndarray]:
    """``{image stem: (68, 2) x, y pixels}`` from a ``reannotated_pts68.npz`` (``names``, ``pts68``
    ``(N, 2, 68)``); empty when the file does not exist."""
    if not path.is_file():
        return {}
    z = np.load(path)
    names, pts = z["names"], z["pts68"]
    if pts.ndim != 3 or pts.shape[1:] != (2, 68) or len(names) != len(pts):
        raise ValueError(f"load_reannotated(): {path}: pts68 must be (N, 2, 68) with N names, "
                         f"got {pts.shape} and {len(names)} names")
    return {str(n): pts[i].T.astype(np.float64) for i, n in enumerate(names)}


def _score(row: dict, kind: str, pred: np.ndarray, gt: np.ndarray, gt_re: np.ndarray | None) -> None:
    """Store the predicted landmarks and their NME against both ground truths in ``row``."""
    row[f"lmk_{kind}_px"] = np.round(pred, 3).tolist()
    row[f"nme_{kind}"] = nme(pred, gt)
    if gt_re is not None:
        row[f"nme_{kind}_re"] = nme_box_of(pred, gt_re, gt)
        row[f"nme_{kind}_re_ownbox"] = nme(pred, gt_re)


def masked_l1_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import structural_similarity

    m = mask > 0.5
    if m.sum() < 10:
        return float("nan"), float("nan")
    l1 = float(np.abs(a - b)[m].mean())
    _, smap = structural_similarity(a, b, channel_axis=2, data_range=1.0, full=True)
    return l1, float(smap.mean(axis=2)[m].mean())


def parse_detector(spec: str) -> tuple[str, str | None, bool]:
    """``BACKEND[=REGRESSOR][+posefit]`` -> ``(backend, regressor weights or version, pose init)``.

    >>> parse_detector("recon3d=v1+posefit"), parse_detector("dlib")
    (('recon3d', 'v1', True), ('dlib', None, False))
    """
    posefit = spec.endswith("+posefit")
    spec = spec[: -len("+posefit")] if posefit else spec
    backend, _, reg = spec.partition("=")
    return backend, reg or None, posefit


def _run_one(p, det_backend, cfg, gt, row, gt_re=None, model=None):
    from recon3d.detect import detect_faces
    from recon3d.errors import Recon3DError
    from recon3d.io import load_image
    from recon3d.reconstruct import reconstruct_all, render_overlay
    from recon3d.render import render_mesh

    t0 = time.perf_counter()
    try:
        loaded = load_image(p)
        t1 = time.perf_counter()
        dets = detect_faces(loaded.image, backend=det_backend, regressor=cfg.regressor)
        row["detect_seconds"] = time.perf_counter() - t1
        if not dets:
            raise Recon3DError("no face found")
        row["det_method"] = dets[0].method
        _score(row, "det", dets[0].lmk_px.numpy().astype(np.float64), gt, gt_re)
        if dets[0].pose_deg is not None:
            row["ypr_det"] = dets[0].pose_deg.numpy().tolist()
        if cfg.fit_init_pose == "regressor":  # detect again inside, so the detection's pose reaches the fit
            rec = reconstruct_all(loaded, config=cfg, model=model)[0]
        else:
            rec = reconstruct_all(loaded, landmarks=dets[0].lmk_px, config=cfg, landmarks_3d=dets[0].landmarks_3d,
                                  model=model)[0]
        _score(row, "fit", rec.fit.lmk_px[0].detach().cpu().numpy().astype(np.float64), gt, gt_re)
        row["ypr"] = rec.fit.pose_deg[0].detach().cpu().numpy().tolist()
        if rec.fit.face_mask is not None:
            ov = rec.fit.face_mask[0].detach().cpu().numpy().astype(np.float32)
            img = loaded.image.numpy()
            rend = render_overlay(rec, alpha=1.0).numpy()
            l1, ssim = masked_l1_ssim(img, rend, ov)
            # like for like: the 3DMM's own albedo x fitted SH shading, no texels taken from the photo
            f = rec.fit
            model = render_mesh(f.verts_cam, rec.model.faces, f.camera.K, img.shape[:2],
                                vert_colors=rec.model.albedo(f.params.albedo), light=f.params.light)
            l1_model, ssim_model = masked_l1_ssim(img, model.image[0].detach().cpu().numpy(), ov)
        else:
            l1 = ssim = l1_model = ssim_model = float("nan")
        row.update(l1=l1, ssim=ssim, l1_model=l1_model, ssim_model=ssim_model, ok=True)
    except Recon3DError as e:
        row["error"] = str(e)
    row["seconds"] = time.perf_counter() - t0


def _in_bin(yaw: float, a: float, b: float) -> bool:
    return (a < abs(yaw) <= b) or (a == 0 and abs(yaw) <= b)


def _bin_name(yaw: float) -> str | None:
    return next((f"[{a},{b}]" for a, b in BINS if _in_bin(yaw, a, b)), None)


def _report(rows: list[dict], label: str) -> dict:
    """Print one backend's table; return its summary."""
    ok = [r for r in rows if r["ok"]]
    fails = [r for r in rows if not r["ok"]]
    summ = {"backend": label, "images": len(rows), "no_result": len(fails)}
    print(f"\n== {label}: {len(rows)} images, {len(fails)} without a result")
    print(f"{'metric':<28}{'all':>9}" + "".join(f"{f'[{a},{b}]':>10}" for a, b in BINS))

    def binned(key):
        have = [r for r in ok if key in r]
        out = [np.mean([r[key] for r in have]) if have else float("nan")]
        for a, b in BINS:
            sel = [r[key] for r in have if _in_bin(r["gt_ypr"][0], a, b)]
            out.append(np.mean(sel) if sel else float("nan"))
        return out

    def count_bins(rs):
        return [len(rs)] + [sum(1 for r in rs if _in_bin(r["gt_ypr"][0], a, b)) for a, b in BINS]

    def line(name, vals, fmt):
        print(f"{name:<28}" + "".join(f"{v:>9{fmt}}" if j == 0 else f"{v:>10{fmt}}" for j, v in enumerate(vals)))

    line("images", count_bins(rows), "")
    line("no result", count_bins(fails), "")
    for key, name in (("nme_det", "NME detector (%)"), ("nme_fit", "NME fitted model (%)")):
        vals = binned(key)
        line(name, [v * 100 for v in vals], ".2f")
        summ[key] = vals
    lacking = [r for r in rows if not r.get("has_reannotated", False)]
    summ["no_reannotated"] = len(lacking)
    if len(lacking) < len(rows):
        print(f"re-annotated 68 points (second ground truth, same pt3d_68 box and bins); "
              f"{len(lacking)} images without them, left out of these lines only")
        line("  images with them", count_bins([r for r in rows if r.get("has_reannotated", False)]), "")
        for key, name in (("nme_det_re", "  NME detector (%)"), ("nme_fit_re", "  NME fitted model (%)"),
                          ("nme_fit_re_ownbox", "  fitted, own box (%)")):
            vals = binned(key)
            line(name, [v * 100 for v in vals], ".2f")
            summ[key] = vals
    else:
        print("re-annotated 68 points: none for these images (no reannotated_pts68.npz)")
    if ok:
        for key, name in (("ypr", "fit"), ("ypr_det", "detector")):
            have = [r for r in ok if key in r]
            if not have:
                continue
            pred = np.array([r[key] for r in have])
            gt = aflw_to_recon3d_ypr(np.array([r["gt_ypr"] for r in have]))
            err = abs_angle_diff_deg(pred, gt)
            geo = geodesic_deg(pred, gt)
            corr = [np.corrcoef(pred[:, k], gt[:, k])[0, 1] if len(have) > 2 else float("nan") for k in range(3)]
            print(f"pose MAE {name} (deg): yaw {err[:, 0].mean():.2f}  pitch {err[:, 1].mean():.2f}  roll {err[:, 2].mean():.2f}  "
                  f"mean {err.mean():.2f}   (sign check, corr: {corr[0]:+.2f} {corr[1]:+.2f} {corr[2]:+.2f})")
            summ[f"pose_mae_{name}"] = float(err.mean())
            print(f"  geodesic rotation error (deg): mean {geo.mean():.2f}, median {np.median(geo):.2f}")
            absyaw = np.abs(np.array([r["gt_ypr"][0] for r in have]))
            bin_sel = [((a, b), (absyaw <= b) & ((absyaw > a) | (a == 0))) for a, b in BINS]
            for (a, b), sel in bin_sel:
                if sel.any():
                    m = err[sel].mean(0)
                    print(f"  |yaw| [{a},{b}] (n={int(sel.sum())}): yaw {m[0]:.2f}  pitch {m[1]:.2f}  roll {m[2]:.2f}  "
                          f"mean {m.mean():.2f}  geodesic {geo[sel].mean():.2f}")
            s_err, keep = standard_pose_mae(pred, np.array([r["gt_ypr"] for r in have]))
            if keep.any():
                m = s_err[keep].mean(0)
                print(f"  head-pose papers' protocol (AFLW's own Euler convention, all |GT angles| <= "
                      f"{STANDARD_POSE_LIMIT_DEG:g}, {int(keep.sum())} kept, {int((~keep).sum())} left out): "
                      f"yaw {m[0]:.2f}  pitch {m[1]:.2f}  roll {m[2]:.2f}  mean {m.mean():.2f}")
                summ[f"pose_mae_{name}_standard"] = float(m.mean())
                for (a, b), in_bin in bin_sel:
                    sel = keep & in_bin
                    if sel.any():
                        print(f"    |yaw| [{a},{b}] (n={int(sel.sum())}): mean {s_err[sel].mean():.2f}")
        l1s = [r["l1"] for r in ok if np.isfinite(r["l1"])]
        l1 = float(np.mean(l1s)) if l1s else float("nan")
        ss = float(np.mean([r["ssim"] for r in ok if np.isfinite(r["ssim"])])) if l1s else float("nan")
        if l1s:
            print(f"thesis Table 4.2 protocol (face region): L1 {l1:.4f}  SSIM {ss:.4f}  "
                  "(rendered with the texture unwrapped from this photo: close to resampling it)")
        summ.update(l1=float(l1), ssim=float(ss))
        lm = [r["l1_model"] for r in ok if np.isfinite(r.get("l1_model", float("nan")))]
        if lm:
            sm = float(np.mean([r["ssim_model"] for r in ok if np.isfinite(r.get("l1_model", float("nan")))]))
            print(f"same protocol, 3DMM albedo x SH render (no photo texels): L1 {np.mean(lm):.4f}  SSIM {sm:.4f}")
            summ.update(l1_model=float(np.mean(lm)), ssim_model=sm)
        print(f"median seconds per image: {np.median([r['seconds'] for r in rows]):.2f} "
              f"(detection {np.median([r.get('detect_seconds', np.nan) for r in ok]) * 1000:.0f} ms)")
    if fails:
        print("no result: " + ", ".join(r["name"] for r in fails[:50]) + (" ..." if len(fails) > 50 else ""))
    return summ


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--fast", action="store_true", help="fast fitting preset")
    ap.add_argument("--no-photometric", action="store_true")
    ap.add_argument("--detector", nargs="+", default=["recon3d"],
                    help="landmark backend(s), e.g. dlib recon3d; BACKEND=REGRESSOR picks the recon3d backend's "
                         "regressor (a shipped version such as v1, or a weights file), a +posefit suffix starts the "
                         "fit's rotation from the regressor's pose head (e.g. recon3d=v1 recon3d recon3d+posefit)")
    ap.add_argument("--texture", choices=("poisson", "net"), default="poisson",
                    help="texture completion of the reconstructions (Table 4.2 columns; default poisson)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None,
                    help="morphable model .npz to fit (default: the shipped default model), e.g. another landmark embedding")
    ap.add_argument("--json", default=None, help="write per-image results (landmarks, NMEs, pose) here")
    ap.add_argument("--reannotated", default=None,
                    help="re-annotated 68 points (.npz: names, pts68 (N,2,68)); default DATA_DIR/reannotated_pts68.npz")
    ap.add_argument("--from-json", nargs="+", default=None,
                    help="only re-print the tables of earlier --json files (several: their backends side by side, "
                         "e.g. two halves of a comparison run in parallel)")
    args = ap.parse_args(argv)
    if args.from_json:
        rows = {}
        for f in args.from_json:
            rows.update(json.loads(Path(f).read_text()))
        summ = [_report(rs, d) for d, rs in rows.items()]
        _side_by_side(summ)
        return 0

    import scipy.io as sio
    import torch

    from recon3d.reconstruct import ReconstructConfig

    torch.set_num_threads(args.threads)
    imgs = sorted(Path(args.data_dir).glob("*.jpg"))
    if args.limit:
        imgs = imgs[: args.limit]
    if not imgs:
        print(f"no *.jpg in {args.data_dir}", file=sys.stderr)
        return 2
    cfgs = {}
    for d in args.detector:
        backend, reg, posefit = parse_detector(d)
        cfgs[d] = ReconstructConfig(fast=args.fast, photometric=not args.no_photometric, texture_size=256,
                                    texture_method=args.texture,
                                    detector=backend, regressor=reg, fit_init_pose="regressor" if posefit else "landmarks")
    re_path = Path(args.reannotated) if args.reannotated else Path(args.data_dir) / "reannotated_pts68.npz"
    if args.reannotated and not re_path.is_file():
        print(f"no {re_path}", file=sys.stderr)
        return 2
    reannotated = load_reannotated(re_path)
    model = None
    if args.model:
        from recon3d.errors import Recon3DError
        from recon3d.morphable import load_model

        try:
            model = load_model(args.model)
        except Recon3DError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    rows: dict[str, list[dict]] = {d: [] for d in args.detector}
    t_start = time.perf_counter()
    for i, p in enumerate(imgs):
        mat = sio.loadmat(p.with_suffix(".mat"))
        gt = mat["pt3d_68"][:2].T.astype(np.float64)
        pp = mat["Pose_Para"][0]
        gt_ypr = np.degrees([pp[1], pp[0], pp[2]])
        gt_re = reannotated.get(p.stem)
        for d in args.detector:
            row = {"name": p.name, "gt_ypr": gt_ypr.tolist(), "ok": False, "yaw_bin": _bin_name(gt_ypr[0]),
                   "gt_ypr_recon3d": aflw_to_recon3d_ypr(gt_ypr)[0].tolist(),
                   "has_reannotated": gt_re is not None, "gt_pt3d_px": np.round(gt, 3).tolist(),
                   "gt_re_px": None if gt_re is None else np.round(gt_re, 3).tolist()}
            _run_one(p, cfgs[d].detector, cfgs[d], gt, row, gt_re, model)
            rows[d].append(row)
        if (i + 1) % 25 == 0 or i + 1 == len(imgs):
            msg = "  ".join(
                f"{d}: ok {sum(r['ok'] for r in rows[d])} NME det "
                f"{np.mean([r['nme_det'] for r in rows[d] if r['ok']] or [np.nan]) * 100:.2f}%" for d in args.detector)
            print(f"[{i + 1}/{len(imgs)}] {msg}  {time.perf_counter() - t_start:.0f} s", file=sys.stderr, flush=True)

    print(f"\nAFLW2000-3D ({args.data_dir}): {len(imgs)} images; photometric {'off' if args.no_photometric else 'on'}"
          f"{', fast' if args.fast else ''}")
    summ = [_report(rows[d], d) for d in args.detector]
    _side_by_side(summ)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def _side_by_side(summ: list[dict]) -> None:
    if len(summ) > 1:
        print("\nside by side (NME %: detector landmarks / fitted model; all and per |yaw| bin)")
        w = max(10, max(len(s_["backend"]) for s_ in summ) + 2)
        print(f"{'backend':<{w}}{'gt':<6}{'no result':>10}"
              + "".join(f"{c:>16}" for c in ("all", "[0,30]", "[30,60]", "[60,90]")) + f"{'pose fit/det':>14}"
              + f"{'papers fit/det':>16}")
        for s_ in summ:
            for gt_name, suffix in (("pt3d", ""), ("re", "_re")):
                if f"nme_det{suffix}" not in s_:
                    continue
                cells = "".join(f"{a * 100:>8.2f}/{b * 100:<7.2f}"
                                for a, b in zip(s_[f"nme_det{suffix}"], s_[f"nme_fit{suffix}"], strict=True))
                pose = f"{s_.get('pose_mae_fit', float('nan')):.2f}/{s_.get('pose_mae_detector', float('nan')):.2f}"
                std = (f"{s_.get('pose_mae_fit_standard', float('nan')):.2f}/"
                       f"{s_.get('pose_mae_detector_standard', float('nan')):.2f}")
                print(f"{s_['backend']:<{w}}{gt_name:<6}{s_['no_result']:>10}{cells}{pose:>14}{std:>16}")


if __name__ == "__main__":
    raise SystemExit(main())
