"""Where does a generator's radiometry change between training and synthesis? (issue 11 diagnosis)

For each run: per-band mean / std (DN) of the generated val images against the real val tiles' same pixels, with
  ema/eval/224:  G_ema in eval mode on whole 224-px tiles (what `rsaug evaluate` and `rsaug synthesize` do)
  ema/eval/64:   G_ema in eval mode on 64-px crops (the training crop size)
  live/eval/224, live/eval/64: the same with the live generator G (not the moving average)
  live/train/64: G in train mode (BatchNorm on batch statistics), batches of 4 64-px crops: what the losses see
  live/train/224: the same on whole tiles, batches of 4
Usage: python radiometry_probe.py TILES RUN [RUN ...] > radiometry_probe.md
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import torch

from rsaug.gan.inference import load_generator
from rsaug.io.tileset import TileSet

torch.set_num_threads(2)


def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    px = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]).astype(np.float64)
    return px.mean(0), px.std(0)


def main() -> None:
    ts = TileSet.open(sys.argv[1])
    rows = ts.split("val")
    masks = np.stack([ts.read_mask(r) for _, r in rows.iterrows()])
    images = np.stack([ts.read_image(r) for _, r in rows.iterrows()])  # (N, C, H, W)
    c0 = [(0, 0), (0, 80), (80, 0), (160, 160)]  # four 64-px crops per tile
    crops_m = np.concatenate([masks[:, y : y + 64, x : x + 64] for y, x in c0])
    crops_i = np.concatenate([images[:, :, y : y + 64, x : x + 64] for y, x in c0])
    rm, rs = stats(images)
    rcm, rcs = stats(crops_i)
    print(
        f"real val tiles: mean {np.round(rm, 1)}, std {np.round(rs, 1)}; 64-px crops: mean {np.round(rcm, 1)}, "
        f"std {np.round(rcs, 1)}\n"
    )
    print("| run | weights / BN mode / size | Δ mean (DN), bands | std error (%), bands |")
    print("|---|---|---|---|")
    for run in sys.argv[2:]:
        for ema in (True, False):
            gen = load_generator(run, device="cpu", ema=ema)
            modes = [("eval", 224), ("eval", 64)] + ([] if ema else [("train", 64), ("train", 224)])
            for mode, size in modes:
                net = copy.deepcopy(gen.net)
                net.train(mode == "train")
                m, real = (masks, images) if size == 224 else (crops_m, crops_i)
                outs = []
                with torch.no_grad():
                    for i in range(0, len(m), 4):
                        lab = gen._labels(m[i : i + 4]).to(gen.device)
                        noise = gen.sample_noise(len(lab), seed=i) if gen.has_noise else None
                        img, _ = net(lab, noise, None)
                        outs.append(gen.to_raster(img.float()))
                gm, gs = stats(np.concatenate(outs))
                qm, qs = stats(real)
                dm = ", ".join(f"{v:+.1f}" for v in gm - qm)
                ds = ", ".join(f"{v:+.0f}" for v in 100 * (gs / qs - 1))
                print(
                    f"| {run.rstrip('/').split('/')[-1]} | {'ema' if ema else 'live'} / {mode} / {size} | {dm} | {ds} |"
                )


if __name__ == "__main__":
    main()
