"""Benchmark ``rsaug tile`` against ``gdal_retile.py`` and ``geotile`` on a large generated scene.

The scene is an 8192 x 8192, 4-band uint8, deflate-compressed (internally tiled 256 x 256) GeoTIFF in
EPSG:32650 with a uint8 index mask (scheme ``gid15``). Its content is a seeded mosaic of real GID-15 tiles from
``../shared/data/gid15`` (random flips; band 4 is a NIR-like mix of the visible bands), so compression behaves
as on real imagery; without the shared data it falls back to smooth seeded noise.

Every tool runs as its own subprocess, timed with a wall clock; peak memory is the child's peak RSS from
``resource.getrusage(RUSAGE_CHILDREN)`` (largest single process) plus the largest sum of PSS (proportional set
size, so pages shared by forked workers count once) over the whole process tree, sampled every 20 ms (counts
worker processes). Tools and settings, all 256-px tiles:

* ``rsaug tile`` (image + mask tiles + index.gpkg + tileset.json; deflate + horizontal predictor; ``--workers``)
* ``gdal_retile.py -co COMPRESS=DEFLATE`` on the scene and on the mask (system python3; and with
  ``PREDICTOR=2`` to match rsaug's settings exactly)
* ``geotile`` ``GeoTile.generate_tiles`` on the scene and on the mask (it writes uncompressed tiles and keeps
  every tile in memory)

and finally ``rsaug tile`` alone on a scene 4x larger (16384 x 16384) to show that peak memory does not grow.

Usage::

    .venv/bin/python bench/bench_tile.py [--size 8192] [--workers 2] [--repeat 3] [--skip-big] [--json out.json]

rsaug and gdal_retile.py run ``--repeat`` times, alternating, and the median run of each is reported (the
machine's speed drifts by 10-30 % over minutes; alternating keeps the ratio fair).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GID15 = Path(os.environ.get("RSAUG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "gid15"
VENV_PY = ROOT / ".venv" / "bin" / "python"
RSAUG = ROOT / ".venv" / "bin" / "rsaug"


# --------------------------------------------------------------------------- data generation
def _load_gid(n: int, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    import rasterio

    stems = sorted(p.stem for p in (GID15 / "images").glob("*.tif")) if GID15.is_dir() else []
    if not stems:
        return None
    rng = np.random.default_rng(seed)
    pick = [stems[i] for i in rng.choice(len(stems), size=min(n, len(stems)), replace=False)]
    imgs, labs = [], []
    for s in pick:
        with rasterio.open(GID15 / "images" / f"{s}.tif") as a, rasterio.open(GID15 / "labels_index" / f"{s}.tif") as b:
            imgs.append(a.read(window=((0, 224), (0, 224))))
            labs.append(b.read(1, window=((0, 224), (0, 224))))
    return np.stack(imgs), np.stack(labs)


def generate_scene(scene: Path, mask: Path, size: int, seed: int = 0) -> None:
    """Write the benchmark scene and mask, 256 rows at a time (memory independent of ``size``)."""
    import rasterio
    from rasterio.transform import from_origin

    cell = 224
    gid = _load_gid(96, seed)
    rng = np.random.default_rng(seed)
    ncell = size // cell + 2
    choice = rng.integers(0, 96 if gid is None else len(gid[0]), size=(ncell, ncell))
    flips = rng.integers(0, 4, size=(ncell, ncell))
    transform = from_origin(500000.0, 4500000.0, 1.0, 1.0)
    common = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "crs": "EPSG:32650",
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "dtype": "uint8",
    }
    with (
        rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"),
        rasterio.open(scene, "w", count=4, **common) as si,
        rasterio.open(mask, "w", count=1, num_threads="all_cpus", **common) as sm,
    ):
        for r0 in range(0, size, 256):
            h = min(256, size - r0)
            rows = np.arange(r0, r0 + h)
            img = np.empty((4, h, size), np.uint8)
            lab = np.empty((h, size), np.uint8)
            for ty in np.unique(rows // cell):
                rsel = rows[(rows // cell) == ty]
                for tx in range(size // cell + 1):
                    c0, c1 = tx * cell, min((tx + 1) * cell, size)
                    if c0 >= size:
                        break
                    k, f = choice[ty, tx], flips[ty, tx]
                    if gid is not None:
                        ti, tl = gid[0][k], gid[1][k]
                    else:  # smooth noise fallback
                        g = np.random.default_rng(int(k))
                        base = np.kron(g.integers(0, 255, (3, 14, 14)), np.ones((16, 16))).astype(np.uint8)
                        ti, tl = base, (base[0] // 17).astype(np.uint8)
                    if f & 1:
                        ti, tl = ti[:, :, ::-1], tl[:, ::-1]
                    if f & 2:
                        ti, tl = ti[:, ::-1], tl[::-1]
                    rr = rsel % cell
                    img[:3, rsel - r0, c0:c1] = ti[:, rr, : c1 - c0]
                    lab[rsel - r0, c0:c1] = tl[rr, : c1 - c0]
            img[3] = (img[0].astype(np.uint16) // 4 + img[1].astype(np.uint16) // 2 + 30).clip(0, 255).astype(np.uint8)
            win = ((r0, r0 + h), (0, size))
            si.write(img, window=win)
            sm.write(lab, 1, window=win)


# --------------------------------------------------------------------------- measurement
def _tree_rss(pid: int) -> int:
    """Memory (bytes) of ``pid`` and all its descendants: the sum of their PSS (RSS where PSS is unavailable)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(parts[1]), int(parts[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
        rss[int(d)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += _pss(p, rss.get(p, 0))
        stack.extend(children.get(p, []))
    return total


def _pss(pid: int, fallback: int) -> int:
    """Proportional set size (shared pages split between the processes sharing them), in bytes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return fallback


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd`` in a fresh helper process; returns wall seconds, peak RSS (MB, largest process) and peak
    process-tree RSS (MB)."""
    helper = [sys.executable, __file__, "_measure", json.dumps(cmd)]
    res = subprocess.run(helper, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _measure_main(cmd: list[str]) -> None:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.02)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
        sys.exit(proc.returncode)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "seconds": round(wall, 3),
                "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
                "peak_tree_pss_mb": round(peak[0] / 2**20, 1),
                "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 2),
            }
        )
    )


def _dir_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def _combine(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {
        "seconds": round(a["seconds"] + b["seconds"], 3),
        "peak_rss_mb": max(a["peak_rss_mb"], b["peak_rss_mb"]),
        "peak_tree_pss_mb": max(a["peak_tree_pss_mb"], b["peak_tree_pss_mb"]),
        "cpu_seconds": round(a["cpu_seconds"] + b["cpu_seconds"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=8192, help="scene side in pixels (default 8192)")
    ap.add_argument("--tile", type=int, default=256, help="tile side (default 256)")
    ap.add_argument("--workers", type=int, default=2, help="rsaug --workers (default 2)")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--skip-gdal", action="store_true")
    ap.add_argument("--skip-geotile", action="store_true")
    ap.add_argument("--skip-big", action="store_true", help="skip rsaug on the 4x larger scene")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of rsaug + gdal_retile runs; the median run of each is reported (default 3)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="rsaug-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    scene, mask = work / "scene.tif", work / "mask.tif"
    results: dict[str, dict[str, float]] = {}
    mp = args.size * args.size / 1e6
    try:
        if not scene.exists():
            t = time.perf_counter()
            generate_scene(scene, mask, args.size)
            print(
                f"generated {args.size}x{args.size} scene in {time.perf_counter() - t:.1f} s "
                f"({scene.stat().st_size / 2**20:.0f} MB + mask {mask.stat().st_size / 2**20:.0f} MB)"
            )
        # cache warm-up so the first tool does not pay for cold reads
        for p in (scene, mask):
            with open(p, "rb") as f:
                while f.read(1 << 24):
                    pass

        # the console script as users run it; if a sibling subcommand breaks `rsaug` itself, the tile command alone
        entry = [str(RSAUG), "tile"]
        if subprocess.run([*entry, "--help"], capture_output=True).returncode != 0:
            print("note: `rsaug` does not start; timing `rsaug.cli.tile` directly")
            entry = [str(VENV_PY), "-c", "from rsaug.cli.tile import command; command()"]

        def rsaug_cmd(sc: Path, mk: Path, out: Path, *extra: str) -> list[str]:
            return [
                *entry,
                str(sc),
                str(mk),
                "-o",
                str(out),
                "--tile-size",
                str(args.tile),
                "--scheme",
                "gid15",
                "--max-unknown",
                "1",
                "--workers",
                str(args.workers),
                "--quiet",
                *extra,
            ]

        out = work / "rsaug"
        tools: dict[str, Callable[[], dict[str, float]]] = {}

        def rsaug_run(extra: tuple[str, ...]) -> dict[str, float]:
            shutil.rmtree(out, ignore_errors=True)
            r = {
                **measure(rsaug_cmd(scene, mask, out, *extra)),
                "output_mb": _dir_mb(out),
                "tiles": len(list((out / "images").iterdir())),
            }
            shutil.rmtree(out, ignore_errors=True)
            return r

        for label, extra in (
            ("rsaug tile (defaults: deflate 1, predictor 2)", ()),
            ("rsaug tile --compress-level 6", ("--compress-level", "6")),
        ):
            tools[label] = functools.partial(rsaug_run, extra)

        def gdal_run(extra: list[str]) -> dict[str, float]:
            runs = []
            size_mb = 0.0
            for src in (scene, mask):
                d = work / "gdal" / src.stem
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir(parents=True)
                runs.append(
                    measure(
                        [
                            "/usr/bin/python3",
                            shutil.which("gdal_retile.py") or "gdal_retile.py",
                            "-q",
                            "-ps",
                            str(args.tile),
                            str(args.tile),
                            "-co",
                            "COMPRESS=DEFLATE",
                            *extra,
                            "-targetDir",
                            str(d),
                            str(src),
                        ]
                    )
                )
                size_mb += _dir_mb(d)
            shutil.rmtree(work / "gdal", ignore_errors=True)
            return {
                **_combine(*runs),
                "scene_seconds": runs[0]["seconds"],
                "mask_seconds": runs[1]["seconds"],
                "output_mb": round(size_mb, 1),
            }

        if not args.skip_gdal and shutil.which("gdal_retile.py"):
            for label, extra in (
                ("gdal_retile.py (deflate)", []),
                ("gdal_retile.py (deflate, predictor 2)", ["-co", "PREDICTOR=2"]),
                ("gdal_retile.py (deflate 1, predictor 2)", ["-co", "PREDICTOR=2", "-co", "ZLEVEL=1"]),
            ):
                tools[label] = functools.partial(gdal_run, extra)
        elif not args.skip_gdal:
            print("gdal_retile.py not found: apt-get install -y gdal-bin python3-gdal")

        # every tool once per round, rounds repeated: each tool's median run is reported, so a slow moment of
        # the machine does not favour one tool
        samples: dict[str, list[dict[str, float]]] = {k: [] for k in tools}
        for _ in range(args.repeat):
            for label, run in tools.items():
                samples[label].append(run())
        for label, runs in samples.items():
            runs = sorted(runs, key=lambda r: r["seconds"])
            results[label] = {**runs[len(runs) // 2], "runs_seconds": [r["seconds"] for r in runs]}
        n_tiles = int(results["rsaug tile (defaults: deflate 1, predictor 2)"]["tiles"])

        if not args.skip_geotile:  # once: far slower than the others
            runs = []
            size_mb = 0.0
            for src in (scene, mask):
                d = work / "geotile" / src.stem
                shutil.rmtree(d, ignore_errors=True)
                code = (
                    f"from geotile import GeoTile; GeoTile({str(src)!r}).generate_tiles({str(d)!r}, "
                    f"tile_x={args.tile}, tile_y={args.tile}, stride_x={args.tile}, stride_y={args.tile})"
                )
                try:
                    runs.append(measure([str(VENV_PY), "-W", "ignore", "-c", code]))
                except RuntimeError as exc:
                    print(f"geotile failed ({exc}); install with .venv/bin/pip install --no-deps geotile fiona")
                    break
                size_mb += _dir_mb(d)
            if len(runs) == 2:
                results["geotile (uncompressed)"] = {
                    **_combine(*runs),
                    "scene_seconds": runs[0]["seconds"],
                    "mask_seconds": runs[1]["seconds"],
                    "output_mb": round(size_mb, 1),
                }
            shutil.rmtree(work / "geotile", ignore_errors=True)

        for r in results.values():
            r["megapixels_per_second"] = round(mp / r["seconds"], 1)

        if not args.skip_big:
            big = args.size * 2
            bs, bm = work / "scene_big.tif", work / "mask_big.tif"
            if not bs.exists():
                generate_scene(bs, bm, big, seed=1)
            out = work / "rsaug_big"
            shutil.rmtree(out, ignore_errors=True)
            r = measure(rsaug_cmd(bs, bm, out))
            r["megapixels_per_second"] = round(big * big / 1e6 / r["seconds"], 1)
            results[f"rsaug tile, {big}x{big} (4x pixels)"] = r
            shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"\n{args.size}x{args.size} 4-band uint8 scene + uint8 mask, {args.tile}-px tiles "
        f"({n_tiles} per raster), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    base = results.get("gdal_retile.py (deflate)")
    print("x gdal: throughput relative to gdal_retile.py (deflate) in this run")
    print(
        f"{'tool':46s} {'wall s':>7s} {'MP/s':>6s} {'x gdal':>6s} {'CPU s':>6s} {'peak RSS MB':>11s} "
        f"{'tree PSS MB':>11s} {'out MB':>6s}"
    )
    for name, r in results.items():
        ratio = base["seconds"] / r["seconds"] if base and "4x pixels" not in name else float("nan")
        r["x_gdal_retile"] = round(ratio, 2) if ratio == ratio else None
        print(
            f"{name:46s} {r['seconds']:7.2f} {r['megapixels_per_second']:6.1f} {ratio:6.2f} {r['cpu_seconds']:6.1f} "
            f"{r['peak_rss_mb']:11.0f} {r['peak_tree_pss_mb']:11.0f} {r.get('output_mb', float('nan')):6.0f}"
        )
    print(f"median of {args.repeat} alternating runs; all runs (wall s):")
    for name, r in results.items():
        if "runs_seconds" in r:
            print(f"  {name:44s} {' '.join(f'{t:.2f}' for t in r['runs_seconds'])}")
    if args.json:
        args.json.write_text(
            json.dumps({"size": args.size, "tile": args.tile, "workers": args.workers, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_measure":
        _measure_main(json.loads(sys.argv[2]))
    else:
        sys.exit(main())
