"""Batch throughput per engine: serial vs local worker processes vs Ray actors, same images, same run.

    python bench/scale.py IMAGES... --workers 2 [--repeat 1] [--engines serial serial1 local ray]
        [-- PIPELINE OPTIONS]   # e.g. -- --fast --texture-size 256

Each engine runs ``python -m pipelines.reconstruct`` (in this process, through ``main``) over the same
images into its own fresh output folder; ``serial`` is the default command (torch's default thread
count), ``serial1`` the same with ``--threads 1`` (what each worker uses). Printed per engine:

* wall: seconds of the whole command, start-up included (spawning workers and loading their models;
  for ``ray`` also starting the local cluster);
* end-to-end images/s = images / wall, and the speed-up over ``serial``;
* steady images/s: (images - workers) / (last result - the workers-th result), i.e. without start-up;
* per image: the median seconds inside the worker (``seconds`` in the index);
* overhead per item: median of (driver round trip - seconds in the worker) over every item but each
  worker's first (which also waited for the worker's start-up): hand-over, pickling, scheduling
  (Ray: the actor call and the object store; local: the pipe).

The machine's load average (``os.getloadavg``) is printed before and after: on a loaded machine the
numbers are contended and should be re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _rows(index: Path) -> list[dict]:
    return [json.loads(line) for line in index.read_text().splitlines() if line.strip()]


def run_engine(engine: str, images: list[str], workers: int, extra: list[str], out: Path) -> dict:
    from pipelines import reconstruct

    argv = [*images, "--out", str(out), "-q", *extra]
    if engine == "serial1":
        argv += ["--threads", "1"]
    elif engine != "serial":
        argv += ["--engine", engine, "--workers", str(workers)]
    t0 = time.time()
    rc = reconstruct.main(argv)
    wall = time.time() - t0
    rows = [r for r in _rows(out / "index.jsonl") if r["status"] == "ok"]
    done = sorted(r["time"] for r in rows)
    k = 1 if engine.startswith("serial") else min(workers, len(done))
    steady = (len(done) - k) / (done[-1] - done[k - 1]) if len(done) > k and done[-1] > done[k - 1] else float("nan")
    first: dict[str, float] = {}  # each worker's first item also waited for its start-up: not overhead
    for r in sorted(rows, key=lambda r: r["time"]):
        first.setdefault(r["worker"], r["time"])
    over = [r["roundtrip"] - r["seconds"] for r in rows if r["roundtrip"] > 0 and r["time"] != first[r["worker"]]]
    return {"engine": engine, "rc": rc, "n": len(rows), "wall": wall, "ips": len(rows) / wall, "steady": steady,
            "per_image": statistics.median(r["seconds"] for r in rows) if rows else float("nan"),
            "overhead_ms": 1000 * statistics.median(over) if over else 0.0}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="run the engine sequence this many times (default 1)")
    ap.add_argument("--engines", nargs="+", default=["serial", "serial1", "local", "ray"],
                    choices=["serial", "serial1", "local", "ray"])
    args = ap.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f}; {len(args.images)} images, workers {args.workers}, "
          f"options {extra or '(defaults)'}; cpus {os.cpu_count()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for engine in args.engines:
                res = run_engine(engine, args.images, args.workers, extra, Path(tmp) / f"{engine}-{r}")
                results.append(res)
                print(f"  {engine:8s} round {r}: {res['n']} ok, {res['wall']:.1f} s", flush=True)
    base = statistics.median(x["ips"] for x in results if x["engine"] == "serial") if any(
        x["engine"] == "serial" for x in results) else float("nan")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("| engine | images | wall (s) | images/s end-to-end | x serial | images/s steady | s/image in worker "
          "| overhead/item (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for engine in args.engines:
        rs = [x for x in results if x["engine"] == engine]
        med = {k: statistics.median(x[k] for x in rs) for k in ("wall", "ips", "steady", "per_image", "overhead_ms")}
        print(f"| {engine} | {rs[0]['n']} | {med['wall']:.1f} | {med['ips']:.3f} | {med['ips'] / base:.2f} | "
              f"{med['steady']:.3f} | {med['per_image']:.2f} | {med['overhead_ms']:.1f} |")
    return 0 if all(x["rc"] == 0 for x in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
