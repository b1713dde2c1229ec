"""Remove occluders (glasses, hands, hair, masks) from faces in photos using the 3D face.

    python -m pipelines.deocclude img.png --out out/deo
    python -m pipelines.deocclude img.png --mask occluder.png --out out/deo
    python -m pipelines.deocclude photos/ --out out/deo
    python -m pipelines.deocclude img.png --fill classical --out out/deo

Per image, into ``OUT/<stem>/``: ``<stem>_deoccluded.png``, ``<stem>_occlusion_mask.png`` (white =
replaced), ``<stem>_face_mask.png`` (rendered 3DMM face region), ``<stem>_rendered.png`` (the relit
3D face used as the fill) and ``<stem>_deocclude.json``. ``--mask`` (one input only) replaces the
automatic detection; any non-black pixel is occluded. ``--fill`` picks the learned inpainter (``net``: it fills
from the surrounding face and the fitted 3DMM render, never from the occluder's colours) or the
training-free fill (``classical``, the default: the shipped inpainter does not beat it yet). The folder is written atomically. One bad
image never stops a batch; ``--resume``, ``--manifest``, ``--engine`` as in ``pipelines.reconstruct``. Exit codes: 0 all succeeded, 1 some failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from pathlib import Path

from pipelines._cli import (
    DEMOS,
    add_batch,
    add_common,
    check_job_folder,
    collect_jobs,
    describe_input,
    load_model_arg,
    no_inputs,
    prepare,
    run_jobs,
    setup_logging,
)

log = logging.getLogger("pipelines.deocclude")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.deocclude", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="image files, folders or globs")
    p.add_argument("--demo", choices=DEMOS, help="use a public-domain photo bundled with a dependency")
    p.add_argument("--mask", default=None, help="user occlusion mask image (same size; non-black = occluded)")
    p.add_argument("--threshold", type=float, default=20.0, help="skin-model distance threshold (default 20)")
    p.add_argument("--cue", choices=("auto", "photometric", "net", "both"), default="auto",
                   help="occlusion detector: the photometric test, the learned occluder network, or both "
                        "(default auto: both when the network's weights are present)")
    p.add_argument("--fill", choices=("auto", "net", "classical"), default="auto",
                   help="how the occluded pixels are filled: the learned inpainter (net), the training-free 3D render + "
                        "Poisson fill (classical), or auto (recon3d.edit.deocclude.DEFAULT_FILL, today classical)")
    p.add_argument("--inpainter", default=None, help="inpainter weights for --fill net (default: the shipped ones)")
    p.add_argument("--model", default=None, help="a converted .npz morphable model (default: the shipped model)")
    p.add_argument("--fast", action="store_true", help="fast fitting preset")
    p.add_argument("--texture-size", type=int, default=512, help="UV texture side (default 512)")
    p.add_argument("--out", default="out", help="output folder (default ./out); one sub-folder per image")
    add_common(p)
    add_batch(p)
    return p


def _process(src, stem: str, args, model, out_root: Path, user_mask):
    import recon3d.reconstruct as api
    from recon3d.batch import Outcome
    from recon3d.edit import deocclude
    from recon3d.errors import ImageError
    from recon3d.io import save_image
    from recon3d.io.atomic import atomic_dir

    check_job_folder(out_root / stem)
    cfg = api.ReconstructConfig(texture_size=args.texture_size, fast=args.fast, max_pixels=args.max_pixels)
    rec = api.reconstruct(src, model=model, config=cfg, device=args.device, name=stem)
    if user_mask is not None and tuple(user_mask.shape) != tuple(rec.image.shape[:2]):
        raise ImageError(f"--mask is {user_mask.shape[1]}x{user_mask.shape[0]} pixels but the image is "
                         f"{rec.image.shape[1]}x{rec.image.shape[0]}; they must be the same size")
    inpainter = None
    if args.inpainter:
        from recon3d.nn.inpaint import load_inpainter

        inpainter = load_inpainter(args.inpainter, device=rec.image.device)
    res = deocclude(rec, mask=user_mask, threshold=args.threshold, cue=args.cue, fill=args.fill, inpainter=inpainter)
    n_occ, n_face = int(res.occlusion_mask.sum()), int(res.face_mask.sum())
    out = out_root / stem
    with atomic_dir(out) as tmp:  # the folder appears complete, or not at all
        save_image(tmp / f"{stem}_deoccluded.png", res.image)
        for name, m in (("occlusion_mask", res.occlusion_mask), ("face_mask", res.face_mask)):
            save_image(tmp / f"{stem}_{name}.png", m.float()[..., None].expand(-1, -1, 3))
        save_image(tmp / f"{stem}_rendered.png", res.rendered)
        (tmp / f"{stem}_deocclude.json").write_text(json.dumps({
            "input": describe_input(src, stem), "user_mask": args.mask, "occluded_px": n_occ, "face_px": n_face,
            "threshold": args.threshold, "cue": args.cue, "fill": args.fill, "inpainter": args.inpainter}, indent=1), encoding="utf-8")
    msg = f"{stem}: {n_occ} px occluded ({100.0 * n_occ / max(n_face, 1):.1f}% of the face) -> {out}"
    return Outcome(msg, (out,), {"pose_deg": rec.pose_deg, "timings": rec.timings, "occluded_px": n_occ})


def _setup(args, model=None, user_mask=None):
    """The per-item function (in each worker: loads the ``--model`` once)."""
    model = model if model is not None else load_model_arg(args.model, args.device)
    return lambda job: _process(job.source, job.name, args, model, Path(args.out), user_mask)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    if (rc := no_inputs(parser, args)) is not None:
        return rc
    if not (0 < args.threshold < float("inf")) or not 16 <= args.texture_size <= 8192:
        print("error: --threshold must be a positive number and --texture-size within [16, 8192]", file=sys.stderr)
        return 2
    out_root = Path(args.out)
    if (rc := prepare(args, out_root)) is not None:
        return rc
    from recon3d.errors import Recon3DError

    jobs, missing = collect_jobs(args.demo, args.inputs)
    if args.mask is not None and (len(jobs) != 1 or args.manifest):
        print("error: --mask needs exactly one input image", file=sys.stderr)
        return 2
    user_mask = None
    if args.mask is not None:
        from recon3d.io import load_image

        try:
            user_mask = load_image(args.mask).image.max(dim=-1).values > 0.5
        except Recon3DError as e:
            print(f"error: --mask: {e}", file=sys.stderr)
            return 1
    try:
        model = load_model_arg(args.model, args.device)
    except Recon3DError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    setup = functools.partial(_setup, args, model if args.engine == "serial" else None, user_mask)
    return run_jobs(jobs, setup, desc="deocclude", out_root=out_root, args=args, missing=missing)


if __name__ == "__main__":
    raise SystemExit(main())
