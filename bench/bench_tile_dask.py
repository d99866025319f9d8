"""Benchmark the overhead of distributed tiling: ``rsaug tile --scheduler`` on a Dask LocalCluster of 2 worker
processes against the local ``--workers 2`` process pool (the baseline), on the tiling benchmark's scene.

The scene is :func:`bench_tile.generate_scene`'s 8192 x 8192 4-band uint8 GeoTIFF (a seeded mosaic of real
GID-15 tiles, EPSG:32650) with its index mask, cut into 256-px tiles (1024 tiles). Three variants, each a fresh
``rsaug tile`` process timed with a wall clock, run ``--repeat`` rounds alternating (the machine's speed drifts;
alternating keeps the ratios fair), medians reported:

* ``pool``: ``--workers 2`` (the baseline);
* ``cluster``: ``--scheduler ADDRESS`` of a LocalCluster (2 single-threaded worker processes) started once by
  this script and kept running, as users run against a running cluster (the target: within 15 % of ``pool``);
  one untimed warm-up run first (a fresh worker's first task imports rsaug, rasterio and GDAL);
* ``local:2``: ``--scheduler local:2``, which starts and stops its own cluster inside the command.

Every variant's tile set is checked against the pool's (same files, same pixels of a sample of tiles, same
index rows). Run alone on the machine::

    .venv/bin/python bench/bench_tile_dask.py [--size 8192] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tile import RSAUG, generate_scene


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return wall


def _same_tileset(a: Path, b: Path, sample: int = 64) -> None:
    """Same files, same index rows, and the same pixels in ``sample`` tiles spread over the set."""
    import geopandas as gpd
    import rasterio

    fa = sorted(p.relative_to(a).as_posix() for p in a.rglob("*.tif"))
    fb = sorted(p.relative_to(b).as_posix() for p in b.rglob("*.tif"))
    if fa != fb:
        raise AssertionError(f"{b}: other files than {a}")
    ia, ib = gpd.read_file(a / "index.gpkg"), gpd.read_file(b / "index.gpkg")
    if not ia.drop(columns="geometry").equals(ib.drop(columns="geometry")):
        raise AssertionError(f"{b}: other index rows than {a}")
    for rel in fa[:: max(1, len(fa) // sample)]:
        with rasterio.open(a / rel) as x, rasterio.open(b / rel) as y:
            if not np.array_equal(x.read(), y.read()):
                raise AssertionError(f"{rel}: other pixels")
    if (a / "tileset.json").read_bytes() != (b / "tileset.json").read_bytes():
        raise AssertionError(f"{b}: other tileset.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=8192, help="scene side in pixels (default 8192)")
    ap.add_argument("--tile-size", type=int, default=256, help="tile side (default 256)")
    ap.add_argument("--repeat", type=int, default=5, help="alternating rounds (default 5)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import distributed

    work = Path(tempfile.mkdtemp(prefix="rsaug-bench-dask-"))
    try:
        scene, mask = work / "scene.tif", work / "mask.tif"
        t0 = time.perf_counter()
        generate_scene(scene, mask, args.size)
        print(f"scene {args.size}^2 generated in {time.perf_counter() - t0:.1f} s", flush=True)
        base = [str(RSAUG), "tile", str(scene), str(mask), "--tile-size", str(args.tile_size), "--scheme", "gid15"]
        base += ["--max-unknown", "1.0", "--quiet"]
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
        )
        variants = {
            "pool": ["--workers", "2"],
            "cluster": ["--scheduler", cluster.scheduler_address],
            "local:2": ["--scheduler", "local:2"],
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        try:
            # untimed warm-up: a fresh worker's first task imports rsaug, rasterio and GDAL (seconds); a running
            # cluster's workers have done that long ago
            _run([*base, *variants["cluster"], "-o", str(work / "warm-up")])
            for rnd in range(args.repeat):
                for name, extra in variants.items():
                    out = work / f"out-{name}"
                    shutil.rmtree(out, ignore_errors=True)
                    times[name].append(round(_run([*base, *extra, "-o", str(out)]), 3))
                    if rnd == 0 and name != "pool":
                        _same_tileset(work / "out-pool", out)
                print(f"round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        finally:
            cluster.close()
        mp = args.size * args.size / 1e6
        med = {k: statistics.median(v) for k, v in times.items()}
        result = {
            "scene": f"{args.size}x{args.size} 4-band uint8 + mask, {args.tile_size}-px tiles",
            "tiles": len(list((work / "out-pool" / "images").glob("*.tif"))),
            "repeat": args.repeat,
            "seconds": times,
            "median_seconds": med,
            "megapixels_per_second": {k: round(mp / v, 2) for k, v in med.items()},
            "ratio_to_pool": {k: round(v / med["pool"], 3) for k, v in med.items()},
            "target": "cluster within 15 % of pool (ratio <= 1.15)",
            "target_met": med["cluster"] / med["pool"] <= 1.15,
            "identical_tile_sets": True,
        }
        print(json.dumps(result, indent=2))
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
