"""Benchmark: end-to-end ``synthesize_tileset`` throughput vs the generator's own forward throughput.

Both are measured in the same run, on the same masks, batch size and device:

* forward: ``generate`` + ``to_raster`` on masks already in memory (no file I/O), after a warm-up;
* end-to-end: :func:`rsaug.synthesis.tilesets.synthesize_tileset` (mask reading, noise per sample, generation, GeoTIFF
  writing in a thread pool, index and description).

Target: end-to-end >= 80 % of forward. Usage::

    python bench/bench_synthesize.py                       # GID-15 tiles from ../shared/data, untrained paper-size G
    python bench/bench_synthesize.py --checkpoint RUN --tiles TILES --device cuda
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_tiles(out: Path, n: int) -> Path:
    """Tile ``n`` real GID-15 pairs (224 px) with rsaug's tiler (all in the train split)."""
    from rsaug.tiling.run import TileOptions, tile_scenes
    from tests.fixtures_tiles import gid15_fixture_stems, gid15_pairs

    stems = gid15_fixture_stems(per_class=max(1, -(-n // 15)))[:n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tile_scenes(gid15_pairs(stems), out, TileOptions(tile_size=224, scheme="gid15", split="1:0:0", seed=0))
    return out


def untrained(preset: str, device: str):
    """A randomly initialised CSEBGAN generator of a preset (throughput does not depend on the weights)."""
    import hashlib

    from rsaug.core.classes import get_scheme
    from rsaug.core.runtime import select_device
    from rsaug.gan.config import model_preset
    from rsaug.gan.inference import Generator
    from rsaug.gan.models import build_models
    from rsaug.io.normalization import Normalization

    scheme = get_scheme("gid15")
    cfg = model_preset(preset, num_classes=scheme.num_classes, out_bands=3)
    torch.manual_seed(0)
    dev = select_device(device)
    net = build_models(cfg, discriminator=False, conductor=False).G.to(dev)
    return Generator(
        net,
        cfg,
        scheme,
        Normalization("uint8", [0.0] * 3, [255.0] * 3),
        checkpoint_sha256=hashlib.sha256(f"untrained-{preset}".encode()).hexdigest(),
        device=dev,
    )


def forward_throughput(gen, masks: list[np.ndarray], seeds: list[int], batch_size: int, repeats: int) -> float:
    """Tiles/s of noise sampling + generate + to_raster on in-memory masks (best of ``repeats``)."""
    from rsaug.synthesis.tilesets import sample_noise

    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            if gen.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(0, len(masks), batch_size):
                m = torch.from_numpy(np.stack(masks[i : i + batch_size]).astype(np.int64))
                noise = torch.cat([sample_noise(gen, s) for s in seeds[i : i + batch_size]])
                gen.to_raster(gen.generate(m, noise=noise))
            best = min(best, time.perf_counter() - t0)
    return len(masks) / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiles", type=Path, default=None, help="tile set (default: tile N real GID-15 pairs)")
    p.add_argument("--n", type=int, default=60, help="tiles to synthesize (1 sample each)")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (default: untrained --preset G)")
    p.add_argument("--preset", default="cpu-small", help="architecture preset of the untrained generator")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--writers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args()
    torch.set_num_threads(2)

    from rsaug.gan.inference import load_generator
    from rsaug.io.tileset import TileSet
    from rsaug.synthesis.tilesets import PlanConfig, plan_synthesis, synthesize_tileset

    work = Path(tempfile.mkdtemp(prefix="bench_syn_"))
    try:
        tiles = args.tiles or make_tiles(work / "tiles", args.n)
        ts = TileSet.open(tiles)
        ids = ts.split("train")["tile_id"].tolist()[: args.n]
        plan = plan_synthesis(ts, PlanConfig(samples_per_mask=1, tile_ids=ids))
        gen = (
            load_generator(args.checkpoint, device=args.device)
            if args.checkpoint
            else untrained(args.preset, args.device)
        )
        rows = ts.index.set_index("tile_id")
        masks = [ts.read_mask(rows.loc[t]) for t, _ in plan.tiles]
        seeds = [s for _, _, s in plan.samples()]
        forward_throughput(gen, masks[: args.batch_size], seeds, args.batch_size, 1)  # warm-up
        fwd = forward_throughput(gen, masks, seeds, args.batch_size, args.repeats)
        e2e_runs = []
        for r in range(args.repeats):
            out = work / f"syn{r}"
            res = synthesize_tileset(ts, gen, out, plan, batch_size=args.batch_size, writers=args.writers)
            e2e_runs.append(res.generated / res.seconds)
            shutil.rmtree(out)
        e2e = max(e2e_runs)
        h, w = masks[0].shape
        result = {
            "device": str(gen.device),
            "model": gen.config.model,
            "generator": str(args.checkpoint) if args.checkpoint else f"untrained {args.preset}",
            "ngf": gen.config.ngf,
            "tile_px": [int(h), int(w)],
            "tiles": len(masks),
            "batch_size": args.batch_size,
            "writers": args.writers,
            "forward_tiles_per_s": round(fwd, 3),
            "end_to_end_tiles_per_s": round(e2e, 3),
            "ratio": round(e2e / fwd, 3),
            "target_ratio": 0.8,
        }
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
