"""Restore faces in photos (deblur, denoise, upscale) with recon3d's face restorer.

    python -m pipelines.restore photo.jpg --out out/restored
    python -m pipelines.restore photos/ --scale 4 --weights my_restorer.safetensors --out out/restored
    python -m pipelines.restore old.jpg --reference same_person.jpg --out out/restored
    python -m pipelines.restore crops/ --aligned --scale 2 --out out/restored

Every face of each photo is aligned to recon3d's face template, restored and pasted back (feathered,
colour-matched); the rest of the photo is enlarged by ``--scale`` (bicubic). ``--aligned``: the inputs
are already template-aligned face crops: no detection, the restored crop at ``--scale`` times its size.
``--reference``: a photo of the same person for the reference-guided model. ``--weights``: a restorer
file (default: the shipped one). Writes ``OUT/<stem>.png`` and ``OUT/<stem>.json`` (faces, identity
cosine input -> output, timings). One bad image never stops a batch (``--resume``, ``--manifest``,
``--engine``: see reconstruct). Exit codes: 0 all succeeded, 1 some failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from pipelines._cli import DEMOS, add_batch, add_common, collect_jobs, describe_input, no_inputs, prepare, run_jobs  # isort: skip
from pipelines._cli import setup_logging  # isort: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.restore", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="image files, folders or globs")
    p.add_argument("--demo", choices=DEMOS, help="use a public-domain photo bundled with a dependency")
    p.add_argument("--reference", default=None, metavar="IMG", help="a photo of the same person (reference-guided model)")
    p.add_argument("--scale", type=int, default=1, help="enlarge the output by this factor, 1 to 8 (default 1)")
    p.add_argument("--aligned", action="store_true", help="the inputs are template-aligned face crops (no detection)")
    p.add_argument("--weights", default=None, metavar="PATH", help="restorer weights (.safetensors; default: shipped)")
    p.add_argument("--detector", choices=["dlib", "recon3d"], default="dlib", help="face detector backend (default dlib)")
    p.add_argument("--no-identity", action="store_true", help="do not compute the identity cosine per face")
    p.add_argument("--out", default="out", help="output folder (default ./out); OUT/<stem>.png per image")
    add_common(p)
    add_batch(p)
    return p


def _process(job, args, reference, out_root: Path):
    from recon3d.batch import Outcome
    from recon3d.edit.restore import restore
    from recon3d.io import save_image
    from recon3d.io.atomic import atomic_file

    r = restore(job.source, reference, scale=args.scale, weights=args.weights, aligned=args.aligned,
                device=args.device, detector=args.detector, identity=not args.no_identity, max_pixels=args.max_pixels)
    png, rec = out_root / f"{job.name}.png", out_root / f"{job.name}.json"
    save_image(png, r.image)
    record = {"input": describe_input(job.source, job.name), "output": png.name, "weights": args.weights,
              "reference_image": args.reference, **r.summary()}
    with atomic_file(rec, "w") as f:
        f.write(json.dumps(record, indent=1))
    cos = [f.identity_cosine for f in r.faces]
    shown = ", ".join(f"{c:.3f}" for c in cos if c is not None) or "n/a"
    msg = f"{job.name}: {len(r.faces)} face(s), identity cosine {shown}, {r.image.shape[1]}x{r.image.shape[0]} -> {png}"
    return Outcome(msg, (png, rec), {"timings": r.timings, "n_faces": len(r.faces), "identity_cosine": cos})


def _setup(args, reference=None):
    """The per-item function (the restorer is loaded, and cached, on the first item of each worker)."""
    return functools.partial(_process, args=args, reference=reference, out_root=Path(args.out))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    if (rc := no_inputs(parser, args)) is not None:
        return rc
    from recon3d.edit.restore import MAX_SCALE

    if not 1 <= args.scale <= MAX_SCALE:
        print(f"error: --scale must be within [1, {MAX_SCALE}], got {args.scale}", file=sys.stderr)
        return 2
    out_root = Path(args.out)
    if (rc := prepare(args, out_root)) is not None:
        return rc
    from recon3d.errors import Recon3DError
    from recon3d.io import load_image
    from recon3d.nn.restoration import load_restorer

    reference = None
    try:
        if args.reference is not None:
            reference = load_image(args.reference, max_pixels=args.max_pixels)
        net = load_restorer(args.weights, reference=reference is not None, device=args.device)
    except Recon3DError as e:
        print(f"error: {'--reference: ' if reference is None and args.reference else ''}{e}", file=sys.stderr)
        return 1
    if reference is not None and not net.uses_reference:
        print(f"error: --reference: the restorer {args.weights} takes no reference photo", file=sys.stderr)
        return 2
    jobs, missing = collect_jobs(args.demo, args.inputs)
    setup = functools.partial(_setup, args, reference)
    return run_jobs(jobs, setup, desc="restore", out_root=out_root, args=args, missing=missing)


if __name__ == "__main__":
    raise SystemExit(main())
