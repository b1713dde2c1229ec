"""Build a recon3d morphable model from folders of face photos (the default model is made this way).

    python -m pipelines.build_model --images ../shared/300w/afw ../shared/300w/helen_testset \\
        ../shared/300w/helen_trainset --out assets/recon3d_face_v1.npz \\
        --manifest assets/manifest.json --figures docs/images

Photos need 68-point ``.pts`` files next to them (300-W format) to learn the landmark embedding.
MediaPipe runs in a separate interpreter (``--mediapipe-python``, default ``.build-venv/bin/python``,
created by ``tools/build_venv.sh``); its per-photo output is cached (resumable) in ``--cache``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import time
from pathlib import Path

log = logging.getLogger("pipelines.build_model")

_REPO = Path(__file__).resolve().parents[1]
_CANONICAL = _REPO / ".." / "shared" / "face-models" / "mediapipe-canonical" / "canonical_face_model.obj"
_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}


def _run_mediapipe(python: str, images: list[Path], cache: Path) -> Path:
    from tqdm import tqdm

    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256("\n".join(map(str, images)).encode()).hexdigest()[:12]
    lst, out = cache / f"images_{key}.txt", cache / f"mediapipe_{key}.npz"
    lst.write_text("\n".join(map(str, images)) + "\n")
    script = _REPO / "tools" / "build_mediapipe_cache.py"
    proc = subprocess.Popen([python, str(script), "--out", str(out), "--list", str(lst)], stderr=subprocess.PIPE, text=True)
    bar = tqdm(total=len(images), desc="mediapipe", unit="img")
    for line in proc.stderr:  # "done/total" progress lines, anything else is MediaPipe's own logging
        parts = line.strip().split("/")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            bar.n = int(parts[0])
            bar.refresh()
        else:
            log.debug("mediapipe: %s", line.rstrip())
    bar.close()
    if proc.wait() != 0:
        raise RuntimeError(f"the MediaPipe step failed (exit {proc.returncode}); run with -v for its log")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build a recon3d morphable model (.npz) from photos with MediaPipe.")
    ap.add_argument("--images", nargs="+", required=True, type=Path, help="folders of photos (with .pts files)")
    ap.add_argument("--out", required=True, type=Path, help="output model .npz")
    ap.add_argument("--mediapipe-python", default=str(_REPO / ".build-venv" / "bin" / "python"))
    ap.add_argument("--canonical", type=Path, default=_CANONICAL, help="MediaPipe canonical_face_model.obj")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "recon3d" / "build")
    ap.add_argument("--report-json", type=Path, default=None, help="write the build report (numbers) here")
    ap.add_argument("--figures", type=Path, default=None, help="folder for model_modes.png / model_albedo.png")
    ap.add_argument("--manifest", type=Path, default=None, help="manifest.json to record the output's sha256 in")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-holdout", type=int, default=100)
    ap.add_argument("--no-eval", action="store_true", help="skip the held-out 68-landmark fit")
    ap.add_argument("--half", action=argparse.BooleanOptionalAction, default=True, help="float16 bases")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import numpy as np
    from tqdm import tqdm

    from recon3d.errors import Recon3DError
    from recon3d.morphable import save_model
    from recon3d.morphable.build import BuildConfig, build_model, evaluate_landmark_fit, load_mediapipe_cache

    try:
        images = sorted(p.resolve() for d in args.images for p in d.iterdir() if p.suffix.lower() in _EXTS)
        if not images:
            log.error("no images found in %s", [str(d) for d in args.images])
            return 1
        log.info("%d photos", len(images))
        t0 = time.time()
        data = load_mediapipe_cache(_run_mediapipe(args.mediapipe_python, images, args.cache), require_pts=True)
        log.info("MediaPipe found a face in %d/%d photos (%.0f s)", len(data.paths), len(images), time.time() - t0)
        bars: dict = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = tqdm(total=total, desc=stage, unit="img")
            bars[stage].n = done
            bars[stage].refresh()

        cfg = BuildConfig(seed=args.seed, n_holdout=args.n_holdout)
        model, rep = build_model(data, args.canonical, config=cfg, progress=progress)
        for b in bars.values():
            b.close()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        sha = save_model(model, args.out, half=args.half)
        log.info("wrote %s (%.2f MB, sha256 %s)", args.out, args.out.stat().st_size / 1e6, sha)
        hold = rep.pop("holdout_mask")
        rep = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in rep.items()}
        rep.update(model.summary(), sha256=sha, build_seconds=round(time.time() - t0, 1),
                   shape_var=model.shape_var.tolist(), expr_var=model.expr_var.tolist(), albedo_var=model.albedo_var.tolist())
        if not args.no_eval and hold.any():
            ev = evaluate_landmark_fit(model, data.lmk68[hold], contour=True, image_sizes=data.sizes[hold])
            ev_static = evaluate_landmark_fit(model, data.lmk68[hold], contour=False, image_sizes=data.sizes[hold])
            rep["holdout_fit"] = {"dynamic_contour": ev, "static": {k: v for k, v in ev_static.items() if k != "per_image"}}
            log.info("held-out NME (68 pts, /sqrt(wh)): %.4f (dynamic contour), %.4f (static)", ev["nme_mean"], ev_static["nme_mean"])
        if args.manifest:
            man = json.loads(args.manifest.read_text()) if args.manifest.is_file() else {}
            man[args.out.name] = {
                "sha256": sha, "format_version": 1, "bytes": args.out.stat().st_size, "units": "m", "index_base": 0,
                "n_verts": model.n_verts, "n_faces": int(model.faces.shape[0]), "n_shape": model.n_shape,
                "n_expr": model.n_expr, "n_albedo": model.n_albedo,
                "source": "300-W photos (research/non-commercial) processed by MediaPipe Face Mesh 0.10.21 (Apache-2.0)",
                "build": "python -m pipelines.build_model --images ../shared/300w/afw ../shared/300w/helen_testset "
                "../shared/300w/helen_trainset --out assets/recon3d_face_v1.npz --manifest assets/manifest.json --figures docs/images",
            }
            args.manifest.write_text(json.dumps(man, indent=2) + "\n")
        if args.figures:
            from recon3d.morphable.build.figures import albedo_figure, modes_figure

            args.figures.mkdir(parents=True, exist_ok=True)
            rep["figure_method"] = modes_figure(model, args.figures / "model_modes.png")
            albedo_figure(model, args.figures / "model_albedo.png")
        if args.report_json:
            args.report_json.write_text(json.dumps(rep, indent=1) + "\n")
    except Recon3DError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
