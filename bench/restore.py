"""Face restoration and face super-resolution (issue 14; seed 002 Tables 1/2, seed 004's reference).

    python bench/restore.py ../shared/faces-128 ../shared/300w/helen_testset \\
        --models unet-l1=A.safetensors no-mmrb=B.safetensors ours=C.safetensors refsr=D.safetensors \\
        [--n 100] [--res 64] [--seed 0] [--identity-dir ../shared/identity] \\
        [--json restore.json] [--figure restore.jpg] [--threads 1]

Data (each ``DATA_DIR``): an aligned face folder (faces-128: its held-out 5 % hash split, the faces no
recon3d network trains on, ``--split``) or a 300-W folder of photos with ``.pts`` files (each crop
warped onto ``recon3d.ops.align.TEMPLATE_68`` by its 68 manual landmarks). ``--n`` faces per folder
(a seeded pick). The ground truth is the aligned face at ``--res``, 8-bit.

Protocols, each a fixed function of ``(--seed, face key)``:

* **blind** (seed 002 Table 1): the seed-002 degradation ``x = [(y ⊗ k)↓s + n_δ]_JPEG_q``
  (``recon3d.data.degrade.DEGRADE_002``, its pixel ranges rescaled to the face size with
  ``DegradePreset.for_res``), resized back to ``--res``;
* **x4** (seed 002 Table 2, seed 004): 4x bicubic down-sampling of the ground truth, bicubic back up
  to ``--res`` (PIL, 8-bit).

Rows: ``input`` (the degraded / bicubic image itself), then every ``--models`` entry run through
``recon3d.nn.restoration.restore_aligned`` (a reference-capable model without a reference here).
Columns: PSNR (dB) and SSIM (``recon3d.ops.metrics``; RGB in [0, 1], 8-bit quantised, SSIM with an
11x11 Gaussian window of σ 1.5, averaged over channels), identity cosine to the ground truth
(128-d descriptors of recon3d's port of dlib's face recognition ResNet, ``embed_aligned``; per
face, mean), FD-dlib of the outputs against the ground-truth set (Fréchet distance on those
descriptors, not FID), and ms per face at batch 1 and batch 16 (``--threads`` torch threads).
No no-reference quality column (NIQE / BRISQUE): no installable package computes either offline
with working shipped parameters (see docs/BENCHMARKS.md, "Face restoration").

Seed 004's reference protocol (models with ``uses_reference``): the input is the x4 image of face A
and the model runs with ``reference=B`` and with ``reference=None``; reported is the identity cosine
of the output to A for both and the gain. Pairs: **real** same-person pairs of ``--identity-dir``
(``deepface/master.csv`` "Yes" rows; LFW-style folders with the person in the file name,
``NAME_enroll_1.jpg`` / ``NAME_verify_2.jpg``), both photos detected and aligned with recon3d's dlib
chain; **synthesized** pairs on the benchmark faces, B = A flipped, colour-jittered and slightly
warped (a similarity of at most 5°, 5 % and 3 % of the side; seeded).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recon3d.data.augment import random_flip_jitter, similarity_warp  # noqa: E402
from recon3d.data.degrade import DEGRADE_002, degrade_batch  # noqa: E402
from recon3d.data.faces import load_faces  # noqa: E402
from recon3d.io.atomic import atomic_file  # noqa: E402
from recon3d.io.image import batch_to_uint8, contact_sheet, save_image  # noqa: E402
from recon3d.io.landmarks_file import read_pts  # noqa: E402
from recon3d.nn.identity import embed_aligned, load_identity_net  # noqa: E402
from recon3d.ops.align import align_face  # noqa: E402
from recon3d.ops.metrics import frechet_distance, psnr, ssim  # noqa: E402

PROTOCOLS = ("blind", "x4")
SR_FACTOR = 4
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

#: ``restore(net, faces, reference=None) -> faces``: how a model is run (default ``restore_aligned``)
Restore = Callable[..., torch.Tensor]


# ---------------------------------------------------------------------------------------------- data

@dataclass
class FaceData:
    """Ground-truth faces of one ``DATA_DIR``: ``images`` uint8 ``(N, 3, res, res)``."""

    name: str
    root: str
    kind: str  # "aligned" or "300w"
    images: torch.Tensor
    keys: list[str]
    skipped: list[str] = field(default_factory=list)


def _is_300w(root: Path) -> bool:
    return any(root.glob("*.pts"))


def _load_300w(root: Path, res: int) -> tuple[torch.Tensor, list[str], list[str]]:
    imgs, keys, skipped = [], [], []
    for p in sorted(q for q in root.iterdir() if q.suffix.lower() in PHOTO_SUFFIXES):
        pts = p.with_suffix(".pts")
        if not pts.is_file():
            continue
        try:
            with Image.open(p) as im:
                pil = im.convert("RGB")
            imgs.append(align_face(pil, read_pts(pts).numpy(), res))
            keys.append(f"{root.name}/{p.stem}")
        except Exception as e:  # an unreadable photo or landmark file: counted, not fatal
            skipped.append(f"{p.name} ({type(e).__name__}: {e})")
    if not imgs:
        raise SystemExit(f"error: {root}: no photo with a readable .pts file")
    return torch.from_numpy(np.stack(imgs)), keys, skipped


def load_dataset(root: str | Path, res: int, *, n: int | None = None, seed: int = 0, split: str = "val",
                 cache_dir: str | Path | None = None) -> FaceData:
    """The ground-truth faces of ``root`` (see the module docstring), ``n`` of them (seeded pick, in
    sorted order)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise SystemExit(f"error: {root}: not a folder")
    if _is_300w(root):
        images, keys, skipped, kind = *_load_300w(root, res), "300w"
    else:
        fs = load_faces(root, res, split=split, cache_dir=cache_dir, progress=False)
        images, keys, skipped, kind = fs.images, list(fs.keys), list(fs.skipped), "aligned"
    if n is not None and n < len(images):
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        images, keys = images[pick], [keys[i] for i in pick.tolist()]
    return FaceData(root.name, str(root), kind, images.contiguous(), keys, skipped)


def key_index(key: str) -> int:
    """The degradation index of a face: 63 bits of SHA-256 of its key (independent of the other faces)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little") >> 1


def bicubic_x4(gt: torch.Tensor, factor: int = SR_FACTOR) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low-res uint8 (N, 3, res/f, res/f), bicubic back up to res uint8)`` with PIL bicubic."""
    n, _, h, w = gt.shape
    lo, up = [], []
    for a in gt.permute(0, 2, 3, 1).numpy():
        small = Image.fromarray(a).resize((max(1, w // factor), max(1, h // factor)), Image.Resampling.BICUBIC)
        lo.append(np.asarray(small))
        up.append(np.asarray(small.resize((w, h), Image.Resampling.BICUBIC)))
    return (torch.from_numpy(np.stack(lo)).permute(0, 3, 1, 2).contiguous(),
            torch.from_numpy(np.stack(up)).permute(0, 3, 1, 2).contiguous())


def make_input(gt: torch.Tensor, keys: list[str], protocol: str, seed: int) -> torch.Tensor:
    """The model input of ``protocol`` for uint8 ground truth ``gt``: uint8, same shape."""
    if protocol == "blind":
        preset = DEGRADE_002.for_res(int(gt.shape[-1]))
        return degrade_batch(gt, seed, [key_index(k) for k in keys], preset)[0]
    if protocol == "x4":
        return bicubic_x4(gt)[1]
    raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")


def synth_reference(gt: torch.Tensor, seed: int) -> torch.Tensor:
    """Seed 004's reference for a face when no second photo exists: the face flipped, colour-jittered
    (brightness / contrast / saturation ±10 %) and warped by a small similarity (rotation ±5°, scale
    ±5 %, shift ±3 % of the side), float in [-1, 1]."""
    g = torch.Generator().manual_seed(int(seed) + 4)
    x = random_flip_jitter(gt, g, flip_p=1.0, brightness=0.1, contrast=0.1, saturation=0.1)
    n = len(x)
    u = torch.rand(n, 4, generator=g) * 2 - 1
    return similarity_warp(x, u, max_deg=5.0, max_scale=0.05, max_shift=0.06, padding="border").clamp(-1, 1)


def to_float(u8: torch.Tensor) -> torch.Tensor:
    return u8.float() / 127.5 - 1


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Network output in [-1, 1] -> uint8 (what a saved PNG holds)."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


# ---------------------------------------------------------------------------------------------- models

def default_restore(net, faces: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    from recon3d.nn.restoration import restore_aligned

    return restore_aligned(net, faces, reference=reference)


def load_model(spec: str):
    """``NAME=PATH`` -> ``(NAME, network)``; PATH ``default`` / ``default-ref``: the shipped restorer /
    reference SR network."""
    from recon3d.nn.restoration import load_restorer

    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"error: --models takes NAME=PATH, got {spec!r}")
    if path in ("default", "default-ref"):
        return name, load_restorer(reference=path == "default-ref")
    return name, load_restorer(path)


def run_model(restore: Restore, net, x: torch.Tensor, reference: torch.Tensor | None = None,
              batch: int = 16) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            ref = None if reference is None else reference[i:i + batch]
            out.append(restore(net, x[i:i + batch], reference=ref).detach().float().cpu())
    return torch.cat(out)


def time_model(restore: Restore, net, x: torch.Tensor) -> dict[str, float]:
    """ms per face at batch 1 (up to 8 faces, after one warm-up) and batch 16 (one batch, after one)."""
    with torch.no_grad():
        restore(net, x[:1])
        k = min(8, len(x))
        t0 = time.perf_counter()
        for i in range(k):
            restore(net, x[i:i + 1])
        b1 = (time.perf_counter() - t0) / k * 1000
        xb = x.repeat(-(-16 // len(x)), 1, 1, 1)[:16]
        restore(net, xb)
        t0 = time.perf_counter()
        restore(net, xb)
        b16 = (time.perf_counter() - t0) / 16 * 1000
    return {"ms_b1": b1, "ms_b16": b16}


# ---------------------------------------------------------------------------------------------- metrics

def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def score(out_u8: torch.Tensor, gt_u8: torch.Tensor, gt_emb: np.ndarray, idnet) -> dict[str, float | None]:
    """PSNR, SSIM, identity cosine and FD-dlib of uint8 outputs against uint8 ground truth."""
    a, b = out_u8.double() / 255, gt_u8.double() / 255
    emb = embed_aligned(to_float(out_u8), idnet)
    fd = frechet_distance(emb, gt_emb) if len(emb) >= 2 else None
    return {"psnr": float(psnr(a, b).mean()), "ssim": float(ssim(a, b).mean()),
            "id_cos": float(_cosine(emb, gt_emb).mean()), "fd_dlib": fd}


# ---------------------------------------------------------------------------------------------- reference pairs

_LFW_SUFFIX = re.compile(r"_(enroll|verify)(_\d+)?$")


def identity_pairs(identity_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """Same-person pairs ``(source, A, B)`` under ``identity_dir``: every ``master.csv`` (columns
    ``file_x, file_y, Decision``; "Yes" rows) and, in folders without one, photos grouped by the
    person in the file name (``NAME_enroll_1.jpg`` -> ``NAME``; every unordered pair, sorted)."""
    root = Path(identity_dir).expanduser()
    pairs: list[tuple[str, Path, Path]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        master = sub / "master.csv"
        if master.is_file():
            with master.open(newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    if row.get("Decision", "").strip().lower() == "yes":
                        pairs.append((sub.name, sub / row["file_x"], sub / row["file_y"]))
            continue
        people: dict[str, list[Path]] = {}
        for p in sorted(sub.rglob("*")):
            if p.suffix.lower() in PHOTO_SUFFIXES:
                people.setdefault(_LFW_SUFFIX.sub("", p.stem), []).append(p)
        for photos in people.values():
            pairs += [(sub.name, a, b) for i, a in enumerate(photos) for b in photos[i + 1:]]
    return pairs


def detect_align(path: Path, res: int) -> np.ndarray | None:
    """``(3, res, res)`` uint8 of the largest face of a photo (recon3d's default dlib chain), or None."""
    from recon3d.detect import detect_faces

    with Image.open(path) as im:
        pil = im.convert("RGB")
    dets = detect_faces(np.asarray(pil))
    return align_face(pil, dets[0].lmk_px.numpy(), res) if dets else None


def _with_without(restore: Restore, net, lq_u8: torch.Tensor, ref: torch.Tensor, gt_emb: np.ndarray,
                  idnet) -> dict[str, float]:
    x = to_float(lq_u8)
    without = embed_aligned(to_float(quantise(run_model(restore, net, x))), idnet)
    with_ = embed_aligned(to_float(quantise(run_model(restore, net, x, reference=ref))), idnet)
    c0, c1 = _cosine(without, gt_emb), _cosine(with_, gt_emb)
    return {"n": int(len(x)), "id_cos_without": float(c0.mean()), "id_cos_with": float(c1.mean()),
            "delta": float((c1 - c0).mean())}


def reference_protocol(models: dict[str, Any], datasets: list[FaceData], *, res: int, seed: int,
                       restore: Restore, idnet, identity_dir: str | Path | None = None) -> dict[str, Any]:
    """Seed 004's with/without-reference identity cosine of every reference-capable model."""
    refs = {k: m for k, m in models.items() if getattr(m, "uses_reference", False)}
    out: dict[str, Any] = {"models": sorted(refs), "sets": {}}
    if not refs:
        return out
    if identity_dir is not None:
        pairs = identity_pairs(identity_dir)
        aligned: dict[Path, np.ndarray | None] = {}
        a_img, b_img, missed = [], [], 0
        for _, a, b in pairs:
            for p in (a, b):
                if p not in aligned:
                    try:
                        aligned[p] = detect_align(p, res)
                    except Exception:  # unreadable photo or no detector: counted as no face
                        aligned[p] = None
            if aligned[a] is None or aligned[b] is None:
                missed += 1
                continue
            a_img.append(aligned[a])
            b_img.append(aligned[b])
        entry: dict[str, Any] = {"pairs": len(pairs), "pairs_without_face": missed, "models": {}}
        if a_img:
            gt = torch.from_numpy(np.stack(a_img))
            ref = to_float(torch.from_numpy(np.stack(b_img)))
            lq, gt_emb = bicubic_x4(gt)[1], embed_aligned(to_float(gt), idnet)
            entry["models"] = {k: _with_without(restore, m, lq, ref, gt_emb, idnet) for k, m in refs.items()}
        out["sets"][f"real pairs ({Path(identity_dir).name})"] = entry
    for d in datasets:
        gt_emb = embed_aligned(to_float(d.images), idnet)
        lq, ref = bicubic_x4(d.images)[1], synth_reference(d.images, seed)
        out["sets"][f"synthesized ({d.name})"] = {
            "pairs": len(d.images), "pairs_without_face": 0,
            "models": {k: _with_without(restore, m, lq, ref, gt_emb, idnet) for k, m in refs.items()}}
    return out


# ---------------------------------------------------------------------------------------------- the benchmark

def run_bench(datasets: list[FaceData], models: dict[str, Any], *, seed: int = 0, restore: Restore | None = None,
              identity_dir: str | Path | None = None, idnet=None, timing: bool = True) -> dict[str, Any]:
    """Every protocol on every dataset, every model: the numbers of the tables, as a dict."""
    restore = restore or default_restore
    idnet = idnet if idnet is not None else load_identity_net()
    res = int(datasets[0].images.shape[-1])
    results: dict[str, Any] = {"res": res, "seed": seed, "protocols": list(PROTOCOLS),
                               "degrade_preset": asdict(DEGRADE_002.for_res(res)), "sr_factor": SR_FACTOR,
                               "datasets": {}, "timing": {}}
    for d in datasets:
        gt_emb = embed_aligned(to_float(d.images), idnet)
        entry: dict[str, Any] = {"root": d.root, "kind": d.kind, "n": len(d.images), "skipped": d.skipped,
                                 "protocols": {}}
        for proto in PROTOCOLS:
            lq = make_input(d.images, d.keys, proto, seed)
            rows = {"input": score(lq, d.images, gt_emb, idnet)}
            x = to_float(lq)
            for name, net in models.items():
                rows[name] = score(quantise(run_model(restore, net, x)), d.images, gt_emb, idnet)
                if timing and name not in results["timing"]:
                    results["timing"][name] = time_model(restore, net, x)
            entry["protocols"][proto] = rows
        results["datasets"][d.name] = entry
    results["reference"] = reference_protocol(models, datasets, res=res, seed=seed, restore=restore, idnet=idnet,
                                              identity_dir=identity_dir)
    return results


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None or not np.isfinite(v) else format(v, fmt)


def format_tables(results: dict[str, Any]) -> str:
    """The markdown tables of :func:`run_bench`'s results."""
    lines: list[str] = []
    for dname, d in results["datasets"].items():
        for proto, rows in d["protocols"].items():
            what = ("blind (seed 002 degradation, resized back)" if proto == "blind"
                    else f"x{results['sr_factor']} (bicubic down, bicubic up)")
            lines += [f"\n**{dname}** ({d['kind']}, {d['n']} faces at {results['res']}²), {what}\n",
                      "| row | PSNR (dB) | SSIM | ID cos | FD-dlib | ms/face b1 | ms/face b16 |",
                      "|---|---|---|---|---|---|---|"]
            for row, m in rows.items():
                t = results["timing"].get(row, {})
                lines.append(f"| {row} | {_f(m['psnr'], '.2f')} | {_f(m['ssim'], '.4f')} | {_f(m['id_cos'], '.4f')} | "
                             f"{_f(m['fd_dlib'], '.4f')} | {_f(t.get('ms_b1'), '.1f')} | {_f(t.get('ms_b16'), '.1f')} |")
    ref = results.get("reference", {})
    if ref.get("models"):
        lines += ["\n**Reference (seed 004)**: identity cosine to A of the x4 input of A restored with and without "
                  "the reference B\n",
                  "| pairs | model | n | ID cos without ref | ID cos with ref | delta |", "|---|---|---|---|---|---|"]
        for sname, s in ref["sets"].items():
            label = f"{sname}, {s['pairs']} pairs" + (f" ({s['pairs_without_face']} without a face)"
                                                     if s["pairs_without_face"] else "")
            for mname, m in s["models"].items():
                lines.append(f"| {label} | {mname} | {m['n']} | {m['id_cos_without']:.4f} | {m['id_cos_with']:.4f} | "
                             f"{m['delta']:+.4f} |")
    else:
        lines.append("\nReference (seed 004): no --models entry uses a reference.")
    return "\n".join(lines)


def make_figure(path: str | Path, data: FaceData, models: dict[str, Any], *, seed: int, restore: Restore,
                rows: int = 4, scale: int = 2) -> list[str]:
    """A contact sheet: one row per face, columns degraded / bicubic / each model (on the degraded
    input) / the first reference model with the synthesized reference / ground truth. Returns the
    column titles."""
    gt = data.images[:rows]
    keys = data.keys[:rows]
    blind, x4 = make_input(gt, keys, "blind", seed), make_input(gt, keys, "x4", seed)
    cols, titles = [blind, x4], ["degraded", "bicubic x4"]
    for name, net in models.items():
        cols.append(quantise(run_model(restore, net, to_float(blind))))
        titles.append(name)
    refs = [(k, m) for k, m in models.items() if getattr(m, "uses_reference", False)]
    if refs:
        k, m = refs[0]
        cols.append(quantise(run_model(restore, m, to_float(blind), reference=synth_reference(gt, seed))))
        titles.append(f"{k}+reference")
    cols.append(gt)
    titles.append("ground truth")
    grid = torch.stack(cols, 1).flatten(0, 1)  # row-major: face by face
    tiles = batch_to_uint8(to_float(grid))
    if scale > 1:
        tiles = tiles.repeat(scale, 1).repeat(scale, 2)
    save_image(path, contact_sheet(tiles, len(cols)))
    return titles


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", metavar="DATA_DIR", help="aligned face folders or 300-W folders (.pts)")
    ap.add_argument("--models", nargs="*", default=[], metavar="NAME=PATH",
                    help="restorer files (PATH 'default' / 'default-ref': the shipped ones)")
    ap.add_argument("--n", type=int, default=100, help="faces per DATA_DIR (seeded pick; 0: all)")
    ap.add_argument("--res", type=int, default=64, help="face side (the shipped models' size)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=("val", "all"), default="val",
                    help="aligned folders: the held-out split (default) or every face")
    ap.add_argument("--identity-dir", default=None, help="same-person photo pairs for seed 004's reference protocol")
    ap.add_argument("--json", default=None, help="write every number here")
    ap.add_argument("--figure", default=None, help="write a contact sheet of the first 300-W DATA_DIR here")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    if args.n < 0 or args.res < 16:
        ap.error("--n must be >= 0 and --res >= 16")
    torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    models = dict(load_model(s) for s in args.models)
    for name, net in models.items():
        if int(getattr(net, "res", args.res)) != args.res:
            print(f"note: {name} works at {net.res}², the benchmark at {args.res}² (restore_aligned resizes)")
    datasets = [load_dataset(p, args.res, n=args.n or None, seed=args.seed, split=args.split) for p in args.data]
    results = run_bench(datasets, models, seed=args.seed, identity_dir=args.identity_dir)
    results["command"] = " ".join(["python bench/restore.py", *(argv if argv is not None else sys.argv[1:])])
    results["threads"] = args.threads
    results["seconds"] = time.perf_counter() - t0
    print(format_tables(results))
    if args.figure:
        fig = next((d for d in datasets if d.kind == "300w"), datasets[0])
        titles = make_figure(args.figure, fig, models, seed=args.seed, restore=default_restore)
        print(f"\ncontact sheet ({fig.name}; columns: {', '.join(titles)}): {args.figure}")
        results["figure"] = {"path": str(args.figure), "dataset": fig.name, "columns": titles}
    if args.json:
        with atomic_file(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
        print(f"numbers: {args.json}")
    print(f"\n{results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
