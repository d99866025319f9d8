"""Does the output's radiometry depend on the image size? G_ema (eval mode, as synthesis uses it) on the top-left
S x S window of every val tile, for S = 64 ... 224, against the real pixels of the same windows.
Usage: python size_probe.py TILES RUN [RUN ...] > size_probe.md
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from rsaug.gan.inference import load_generator
from rsaug.io.tileset import TileSet

torch.set_num_threads(2)
SIZES = (64, 96, 128, 160, 224)


def main() -> None:
    ts = TileSet.open(sys.argv[1])
    rows = ts.split("val")
    masks = np.stack([ts.read_mask(r) for _, r in rows.iterrows()])
    images = np.stack([ts.read_image(r) for _, r in rows.iterrows()]).astype(np.float64)
    print("| run | window (px) | coarsest feature map | Δ mean (DN), bands | std error (%), bands |")
    print("|---|---|---|---|---|")
    for run in sys.argv[2:]:
        gen = load_generator(run, device="cpu")
        down = 2**gen.config.num_upsampling
        for s in SIZES:
            m, real = masks[:, :s, :s], images[:, :, :s, :s]
            fake = np.concatenate(
                [gen.to_raster(gen.generate(m[i : i + 8], seed=i)) for i in range(0, len(m), 8)]
            ).astype(np.float64)
            dm = fake.mean((0, 2, 3)) - real.mean((0, 2, 3))
            ds = 100 * (fake.std((0, 2, 3)) / real.std((0, 2, 3)) - 1)
            name = run.rstrip("/").split("/")[-1]
            print(
                f"| {name} | {s} | {s // down} x {s // down} | {', '.join(f'{v:+.1f}' for v in dm)} | "
                f"{', '.join(f'{v:+.0f}' for v in ds)} |"
            )


if __name__ == "__main__":
    main()
