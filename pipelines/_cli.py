"""Small helpers shared by the ``python -m pipelines.<verb>`` entry points: argparse, logging, the demo
images and the tqdm bar / summary around :func:`recon3d.batch.run_batch`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DEMOS = ("astronaut", "grace_hopper")


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def parse_shard(parser: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    """``--shard K/N`` -> ``(k, n)``; a usage error (exit 2) unless ``0 <= K < N``."""
    try:
        k, n = (int(x) for x in text.split("/"))
        if not 0 <= k < n:
            raise ValueError
    except ValueError:
        parser.error(f"--shard must be K/N with 0 <= K < N, got {text!r}")
    return k, n


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="torch device (default: cpu; e.g. cuda)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--deterministic", action="store_true",
                   help="bit-reproducible results for a given --seed: one CPU thread and deterministic "
                        "torch algorithms (slower; see README 'Reproducibility')")
    p.add_argument("--max-pixels", type=int, default=50_000_000, metavar="N",
                   help="refuse images larger than N pixels (default 50 000 000), checked before decoding")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging; -v also shows tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def no_inputs(parser: argparse.ArgumentParser, args) -> int | None:
    """2 (after the usage line and a one-line error) when the command line names no input, else None."""
    if args.inputs or getattr(args, "demo", None) or args.manifest:
        return None
    parser.print_usage(sys.stderr)
    print("error: give at least one input image, folder, glob, --manifest FILE or --demo NAME", file=sys.stderr)
    return 2


def add_batch(p: argparse.ArgumentParser) -> None:
    """The batch options every batch verb shares: manifests, resume, the results index, the engine."""
    g = p.add_argument_group("batch")
    g.add_argument("--manifest", action="append", default=[], metavar="FILE",
                   help="a text file of image paths (one a line) or a CSV with a 'path' column (optional 'name', "
                        "'landmarks'); read as a stream; relative paths are relative to the manifest (repeatable)")
    g.add_argument("--resume", action="store_true",
                   help="skip inputs whose outputs are complete (their done-marker in OUT/.done) and from that input")
    g.add_argument("--index", default=None, metavar="FILE",
                   help="append one JSON line per item (status, error, pose, timings, outputs) to FILE "
                        "(default OUT/index.jsonl)")
    g.add_argument("--engine", choices=("serial", "local", "ray"), default="serial",
                   help="serial: this process (default); local: --workers processes on this machine; "
                        "ray: --workers Ray actors (pip install 'recon3d[ray]')")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes or Ray actors (default: one per CPU of this machine, or of the Ray "
                        "cluster with --ray-address, divided by --threads)")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads per worker (default 1 with --engine local/ray; serial: torch's default)")
    g.add_argument("--retries", type=int, default=2, metavar="N",
                   help="times an item is restarted after its worker died, before it is recorded failed (default 2)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="an existing Ray cluster (e.g. auto, ray://head:10001; default: start a local one)")


def add_restore(p: argparse.ArgumentParser, when: str) -> None:
    """``--restore`` / ``--restore-weights``: the face restorer of :mod:`recon3d.edit.restore` ``when``."""
    p.add_argument("--restore", action="store_true", help=f"restore the faces {when} (see pipelines.restore)")
    p.add_argument("--restore-weights", default=None, metavar="PATH",
                   help="restorer weights for --restore (.safetensors; default: the shipped restorer)")


def check_restorer(args) -> int | None:
    """With ``--restore``: load (and cache) the restorer now, so that missing or bad weights fail once,
    before any work: 1 after a one-line error; else ``None``."""
    if not getattr(args, "restore", False):
        return None
    from recon3d.nn.restoration import load_restorer

    return _preload("--restore", lambda: load_restorer(args.restore_weights, device=args.device))


def _preload(flag: str, load) -> int | None:
    """Run ``load()``; on a recon3d error print ``error: FLAG: ...`` (one line) and return 1."""
    from recon3d.errors import Recon3DError

    try:
        load()
    except Recon3DError as e:
        print(f"error: {flag}: {e}", file=sys.stderr)
        return 1
    return None


def add_refine(p: argparse.ArgumentParser) -> None:
    """``--refine {none,net}`` / ``--refiner``: the learned rotation refiner of :mod:`recon3d.nn.rotate_refine`."""
    from recon3d.edit.rotate import DEFAULT_REFINE, REFINE_MODES

    p.add_argument("--refine", choices=REFINE_MODES, default=DEFAULT_REFINE,
                   help=f"refine every rotated view with the learned refiner ('net'; default {DEFAULT_REFINE!r})")
    p.add_argument("--refiner", default=None, metavar="PATH",
                   help="rotation refiner weights for --refine net (.safetensors; default: the shipped refiner)")


def check_refiner(args) -> int | None:
    """With ``--refine net``: load (and cache) the refiner now, so that missing or bad weights fail once, before
    any work: 1 after a one-line error; else ``None``."""
    if getattr(args, "refine", "none") != "net":
        return None
    from recon3d.nn.rotate_refine import load_rotation_refiner

    return _preload("--refine net", lambda: load_rotation_refiner(args.refiner, device=args.device))


def add_texture(p: argparse.ArgumentParser, size: int) -> None:
    """``--texture-size`` and ``--texture {poisson,net}`` / ``--uv-generator``: how the UV texture is completed."""
    p.add_argument("--texture-size", type=int, default=size, help=f"UV texture side in texels (default {size})")
    from recon3d.texture.learned import DEFAULT_TEXTURE_METHOD, TEXTURE_METHODS

    p.add_argument("--texture", choices=TEXTURE_METHODS, default=DEFAULT_TEXTURE_METHOD,
                   help="complete the texels the photo does not show by mirror + Poisson blending ('poisson') or "
                        f"with the learned UV generator ('net'; default {DEFAULT_TEXTURE_METHOD!r})")
    p.add_argument("--uv-generator", default=None, metavar="PATH",
                   help="UV generator weights for --texture net (.safetensors; default: the shipped generator)")


def check_uv_generator(args) -> int | None:
    """With ``--texture net``: load (and cache) the UV generator now, so that missing or bad weights fail once,
    before any work: 1 after a one-line error; else ``None``."""
    if getattr(args, "texture", "poisson") != "net":
        return None
    from recon3d.nn.uv_generator import load_uv_generator

    return _preload("--texture net", lambda: load_uv_generator(args.uv_generator, device=args.device))


def prepare(args, out_root) -> int | None:
    """The checks every batch verb does before any work, and the run-time settings: ``--device``
    exists here, ``--max-pixels`` is positive, ``out_root`` can be written, the batch options are
    sane (``--engine ray``: Ray is installed; manifests can be read); then the temporary folders of
    killed runs in ``out_root`` are removed, and ``--seed`` and ``--deterministic`` set.
    Prints a one-line error and returns 2 (usage error), else ``None``."""
    import torch

    from recon3d._checks import check_device
    from recon3d.batch.engines import EngineError, import_ray
    from recon3d.batch.records import DoneMarkers
    from recon3d.errors import Recon3DError
    from recon3d.io.atomic import check_output_dir, clean_stale_temps

    if args.max_pixels <= 0:
        print("error: --max-pixels must be > 0", file=sys.stderr)
        return 2
    if not 0 <= args.seed < 2**63:
        print("error: --seed must be within [0, 2**63)", file=sys.stderr)
        return 2
    if (args.workers is not None and args.workers < 1) or (args.threads is not None and args.threads < 1) \
            or args.retries < 0:
        print("error: --workers and --threads must be >= 1 and --retries >= 0", file=sys.stderr)
        return 2
    for m in args.manifest:
        if not os.access(m, os.R_OK) or not os.path.isfile(m):
            print(f"error: --manifest {m}: no such readable file", file=sys.stderr)
            return 2
    if args.engine == "ray":
        try:
            import_ray()
        except EngineError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    try:
        check_device(args.device)
    except Recon3DError as e:
        print(f"error: --device: {e}", file=sys.stderr)
        return 2
    try:
        check_output_dir(out_root)
    except Recon3DError as e:
        print(f"error: --out: {e}", file=sys.stderr)
        return 2
    clean_stale_temps(out_root)  # only those of processes that no longer run
    DoneMarkers(out_root).clean()
    torch.manual_seed(args.seed)
    if args.deterministic:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True, warn_only=True)
    return None


def engine_config(args):
    """The :class:`recon3d.batch.engines.EngineConfig` of the batch options."""
    from recon3d.batch.engines import EngineConfig

    parallel = args.engine != "serial"
    threads = 1 if args.deterministic else args.threads
    return EngineConfig(kind=args.engine, workers=args.workers if parallel else 1,
                        threads=threads if threads or not parallel else 1, retries=args.retries,
                        ray_address=args.ray_address, deterministic=args.deterministic, seed=args.seed)


def check_job_folder(folder) -> None:
    """Raise ``OutputError`` before any work when a file is where the job's output folder goes."""
    from recon3d.io.atomic import OutputError

    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder; move it away")


def demo_image(name: str):
    """A public-domain photo bundled by a dependency: scikit-image's astronaut (Eileen Collins,
    NASA) or matplotlib's grace_hopper.jpg. Returns ``(array, stem)``."""
    if name == "astronaut":
        from skimage.data import astronaut

        return astronaut(), "astronaut"
    if name == "grace_hopper":
        import matplotlib.cbook as cbook

        return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), "grace_hopper"
    raise ValueError(f"unknown demo {name!r}; choose from {DEMOS}")


def collect_jobs(demo: str | None, inputs: list[str], all_faces: bool = False):
    """:func:`recon3d.batch.collect_jobs` with ``--demo`` first: ``(jobs, missing)``."""
    from recon3d.batch import collect_jobs as _collect

    return _collect(inputs, prepend=[demo_image(demo)] if demo else [], all_faces=all_faces)


def run_jobs(jobs, setup, *, desc: str, out_root, args, missing=(), done=None) -> int:
    """Run the batch: ``jobs`` then the rows of ``args.manifest``, through
    :func:`recon3d.batch.run_batch` on ``args.engine`` with a tqdm bar, done-markers in
    ``out_root`` and the results index (``args.index``, default ``out_root/index.jsonl``).

    ``setup``: a picklable zero-argument callable returning the per-item function (called once per
    worker; in this process for ``serial``). A ``Recon3DError`` is logged in one line (traceback with
    ``-v``), any other exception with its traceback. With ``args.resume`` an item whose done-marker
    is valid (and, given ``done(job)``, that also passes it) is skipped. Prints a summary and the
    failures; returns the exit code (0 all succeeded, 1 some failed or the engine could not run).
    """
    import itertools

    from tqdm import tqdm

    from recon3d.batch import run_batch
    from recon3d.batch.engines import EngineError
    from recon3d.batch.jobs import count_manifest, iter_manifest
    from recon3d.batch.records import DoneMarkers, ResultsIndex
    from recon3d.errors import Recon3DError

    log = logging.getLogger(f"pipelines.{desc}")
    quiet, verbose = args.quiet, args.verbose
    markers = DoneMarkers(out_root)
    resume = None
    if args.resume:
        resume = markers.is_done if done is None else (lambda job: markers.is_done(job) and done(job))
    try:
        total = len(jobs) + sum(count_manifest(m) for m in args.manifest)
    except Recon3DError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    many = total > 1
    bar = tqdm(total=total, desc=desc, unit="img", disable=quiet or not many)
    index_path = Path(args.index) if args.index else Path(out_root) / "index.jsonl"

    def progress(item, n_done: int, n_total) -> None:
        bar.update(1)
        if item.status == "ok" and item.message and not quiet:
            bar.write(item.message) if many else print(item.message)
        elif item.status == "failed":
            if item.expected:
                log.error("%s: %s%s", item.name, item.error, f"\n{item.traceback}" if verbose > 0 else "")
            else:
                log.error("%s: %s%s", item.name, item.error, f"\n{item.traceback}" if item.traceback else "")

    all_jobs = itertools.chain(jobs, *(iter_manifest(m) for m in args.manifest))
    with bar, ResultsIndex(index_path) as index:
        for m in missing:
            index.write(_missing_item(m), m)
        try:
            report = run_batch(all_jobs, setup=setup, done=resume, missing=missing, progress=progress,
                               engine=engine_config(args), markers=markers, total=total, keep_ok=False,
                               on_result=lambda item, job: index.write(item, job.source))
        except (EngineError, Recon3DError) as e:  # the engine could not run, a bad manifest row
            bar.close()
            print(f"error: {e}", file=sys.stderr)
            return 1
    if not quiet or report.failures:
        extra = f", {report.n_skipped} skipped (already done)" if args.resume else ""
        print(f"done: {report.n_ok} succeeded, {len(report.failures)} failed{extra} -> {out_root} (index: {index_path})")
    for item in report.failures:
        print(f"  FAILED {item.name}: {item.error}", file=sys.stderr)
    return 1 if report.failures else 0


def _missing_item(m: str):
    from recon3d.batch import ItemResult

    return ItemResult(name=m, status="failed", error="input not found")


def describe_input(src, stem: str) -> str:
    """What to record as a job's input in JSON: the path, or ``demo:<name>`` for an in-memory image.

    >>> describe_input(Path("a/b.png"), "b"), describe_input(object(), "astronaut")
    ('a/b.png', 'demo:astronaut')
    """
    return str(src) if isinstance(src, (str, os.PathLike)) else f"demo:{stem}"


def load_model_arg(path: str | None, device: str | None):
    """The ``--model`` file as a MorphableModel (``None``: use the default). Raises ``Recon3DError``."""
    if not path:
        return None
    from recon3d.morphable import load_model

    return load_model(path, device=device)


def setup_torch(threads: int | None, device: str) -> int | None:
    """Set torch's thread count and check ``device``: None when fine, else the exit code (2) after a
    one-line error (the training verbs)."""
    import torch

    from recon3d._checks import check_device
    from recon3d.errors import Recon3DError

    if threads:
        torch.set_num_threads(threads)
    try:
        check_device(device)
    except Recon3DError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return None


def training_progress(args, desc: str, keys: tuple[str, ...]):
    """The progress bar of the training verbs (steps with ``--steps``, else seconds of ``--minutes``; off with
    ``--quiet``): ``(bar or None, progress callback for the loop, log function)``; the loop's record lines go
    above the bar, its other lines to the debug log."""
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = (tqdm(total=args.steps, desc=desc, unit="step") if args.steps else
               tqdm(total=round(args.minutes * 60), desc=desc, unit="s",
                    bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s {postfix}"))

    def progress(info: dict) -> None:
        if bar is not None:
            bar.n = info["step"] if args.steps else min(round(info["seconds"]), bar.total)
            st = info.get("stats", {})
            bar.set_postfix_str(f"step {info['step']} " + " ".join(f"{k} {st[k]:.3f}" for k in keys if k in st),
                                refresh=True)

    def say(msg: str) -> None:
        (bar.write if bar is not None and ": train loss" in msg else logging.getLogger("pipelines").debug)(msg)

    return bar, progress, say


def train_verb(args, desc: str, keys: tuple[str, ...], train):
    """Run ``train(log_fn, progress)`` (a recipe's ``train_*`` call) under the bar of :func:`training_progress`:
    its result, or None after a one-line error for bad data or settings (the verb then exits 2)."""
    from recon3d.errors import Recon3DError

    bar, progress, say = training_progress(args, desc, keys)
    try:
        return train(say, progress)
    except (ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    finally:
        if bar is not None:
            bar.close()


def add_training_args(ap: argparse.ArgumentParser, what: str, lambdas: tuple, *, lr: float = 5e-4) -> None:
    """The options every image-to-image training verb shares: ``--out``, the budget (``--minutes``, ``--clock``,
    ``--steps``), ``--batch``, ``--lr``, one ``--lambda-NAME`` per ``(name, default)`` of ``lambdas``, ``--init``,
    ``--eval-every``, ``--threads``, ``--device``, ``--seed``, ``--export`` and the logging flags."""
    ap.add_argument("--out", required=True, help="checkpoint / history folder")
    ap.add_argument("--minutes", type=float, default=60.0, help="training-time budget (total, across resumed runs)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="what --minutes counts: elapsed time or this process's CPU time")
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps instead")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=lr)
    for name, default in lambdas:
        ap.add_argument(f"--lambda-{name}", type=float, default=default, help=f"loss weight (default {default}); 0: off")
    ap.add_argument("--init", default=None, help=f"fine-tune these exported {what} weights")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", default=None, help=f"write the trained {what} here (fp16 safetensors)")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("-q", "--quiet", action="store_true")


def export_trained(args, argv, res, spec, verb: str, **extra) -> None:
    """With ``--export``: save ``res.net["G"]`` as ``spec`` with :func:`training_meta` (``extra`` added)."""
    if not args.export:
        return
    from recon3d.nn.registry import save_network

    meta = training_meta(verb, argv, res, clock=args.clock, device=args.device, **extra)
    out = Path(args.export)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_network(res.net["G"], out, spec, meta=meta)
    logging.getLogger(f"pipelines.{verb}").info("wrote %s", out)


def training_meta(verb: str, argv: list[str] | None, result, **extra) -> dict:
    """The training summary written into exported weights: steps, minutes, the last record's ``val_`` numbers,
    the exact command, torch's version, and ``extra``."""
    import shlex

    import torch

    last = result.history[-1] if result.history else {}
    return {"steps": result.step, "minutes": round(result.seconds / 60, 1), **extra,
            **{k: v for k, v in last.items() if k.startswith("val_")},
            "licence": "trained on the given faces: inherits their licence (faces-128 / UTKFace: non-commercial "
                       "research only)",
            "command": f"python -m pipelines.{verb} " + " ".join(
                shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
            "torch": torch.__version__}


def photo_build_main(argv: list[str] | None, prog: str, doc: str, build: str, size: str, what: str) -> int:
    """The sample-builder verbs (``make_rotation_pairs``, ``make_uv_pairs``): photo folders split by hash,
    taken in turns, built with ``recon3d.data.<build>`` into ``--out`` (resumable, ``--shard K/N``)."""
    ap = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="+", help="folders of face photos (aligned crops or photos with one face)")
    ap.add_argument("--out", required=True, help="the sample folder")
    ap.add_argument("--n", type=int, default=None, help="the first N photos (default: all)")
    ap.add_argument("--split", choices=("train", "val", "all"), default="train", help="which split (default train)")
    ap.add_argument("--val-percent", type=float, default=5.0, help="percent of photos held out (default 5)")
    ap.add_argument("--chunk", type=int, default=10, help="photos per chunk file (default 10)")
    ap.add_argument("--shard", default="0/1", help="K/N: this process does every N-th photo from the K-th")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random target poses (default 0)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    shard = parse_shard(ap, args.shard)
    bad = next((f"{s}: not a folder" for s in args.src if not Path(s).expanduser().is_dir()), None)
    if bad is None and args.n is not None and args.n < 1:
        bad = "--n must be >= 1"
    elif bad is None and args.chunk < 1:
        bad = "--chunk must be >= 1"
    elif bad is None and not 0 <= args.val_percent <= 100:
        bad = "--val-percent must be within [0, 100]"
    elif bad is None and Path(args.out).expanduser().is_file():
        bad = f"--out {args.out}: is a file; give a folder"
    if bad:
        ap.print_usage(sys.stderr)
        print(f"error: {bad}", file=sys.stderr)
        return 2

    import importlib

    import torch

    from recon3d.data.faces import list_photos
    from recon3d.data.rotation_pairs import interleave
    from recon3d.data.splits import is_held_out, photo_key
    from recon3d.errors import Recon3DError

    mod_name, build_fn = build.rsplit(".", 1)
    mod = importlib.import_module(f"recon3d.data.{mod_name}")
    torch.set_num_threads(max(1, args.threads))
    groups = []
    for s in args.src:
        files = list_photos(Path(s).expanduser())
        if args.split != "all":
            files = [p for p in files if is_held_out(photo_key(p, "/"), args.val_percent) == (args.split == "val")]
        groups.append(files)
    photos = interleave(groups)
    if not photos:
        print(f"error: no photos in the {args.split} split of {', '.join(args.src)}", file=sys.stderr)
        return 1
    try:
        made = getattr(mod, build_fn)(photos, args.out, n=args.n, chunk=args.chunk, shard=shard, seed=args.seed,
                                      progress=not args.quiet)
        n_ok, n_skipped = getattr(mod, size)(args.out)
    except (OSError, ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not n_ok:
        print(f"error: {args.out}: no {what} yet ({n_skipped} skipped)", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"done: {made} photos processed now; the folder holds {n_ok} {what}s, {n_skipped} skipped -> {args.out}")
    return 0


def image_grid(images, height: int):
    """The images (``(H, W, 3)`` in [0, 1]) side by side as one PIL image, each resized to ``height`` rows."""
    import numpy as np
    from PIL import Image

    cells = [Image.fromarray((np.clip(np.asarray(im), 0, 1) * 255).astype(np.uint8)) for im in images]
    cells = [c.resize((max(1, round(c.width * height / c.height)), height), Image.LANCZOS) for c in cells]
    grid = Image.new("RGB", (sum(c.width for c in cells), height))
    for c, x in zip(cells, np.cumsum([0] + [c.width for c in cells[:-1]]), strict=True):
        grid.paste(c, (int(x), 0))
    return grid


def save_turntable(images, path) -> None:
    """A looping GIF of ``images`` (``(H, W, 3)`` in [0, 1]) swept forth and back, 120 ms a frame."""
    import numpy as np
    from PIL import Image

    frames = list(images) + list(images)[-2:0:-1]
    pil = [Image.fromarray((np.clip(np.asarray(im), 0, 1) * 255).astype(np.uint8)) for im in frames]
    pil[0].save(path, save_all=True, append_images=pil[1:], duration=120, loop=0)
