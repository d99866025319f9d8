"""Radiometry floor of the shared GID-15 tiles: real tiles of the train split in the place of generated ones.

Usage: python radfloor.py TILES > radfloor.md (TILES: `rsaug tile ../shared/data/gid15/images
../shared/data/gid15/labels_index --tile-size 224`, 406 train / 102 val / 101 test). The same figures as
`rsaug evaluate`'s radiometry (rsaug.evaluation.radiometry.radiometry_report): evaluated split = "real",
train tiles = "generated"; draws of as many train tiles as the evaluated split (seeds 0-2; seed 0 is
`rsaug evaluate --seed 0`'s floor draw), and all train tiles.
"""

import sys

import numpy as np

from rsaug.evaluation.radiometry import PixelMoments, radiometry_report
from rsaug.io.tileset import TileSet
from rsaug.segmentation.data import load_tiles


def moments(ta, idx, bands, k):
    m = PixelMoments(bands, k)
    for i in idx:
        m.add(ta.images[i][None], ta.masks[i][None])
    return m


def line(what, r):
    s = r["summary"]
    o = " / ".join("%+.1f" % b["mean_error_dn"] for b in r["overall"])
    os_ = " / ".join("%+.0f" % b["std_error_pct"] for b in r["overall"])
    u = " / ".join("%+.1f" % b["mean_error_dn"] for b in r["unknown"]["bands"])
    return (
        f"| {what} | {o} | {os_} | {s['class_mean_abs_error_dn']:.1f} | {s['class_mean_abs_std_error_pct']:.0f} | "
        f"{s['class_within']}/{s['class_pairs']} | {u} |"
    )


ts = TileSet.open(sys.argv[1])
names, k = ts.scheme.names, ts.scheme.num_classes
train = load_tiles(ts, ["train"], "train")
print("| evaluated split vs train tiles | overall Δ mean (DN) | overall std error (%) | per class mean |Δ mean| (DN) "
      "| per class mean |std error| (%) | band-class pairs within 3 DN / 10 % | unknown Δ mean (DN) |")
print("|---|---|---|---:|---:|---:|---|")
full = {}
for ev in ("test", "val"):
    real = load_tiles(ts, [ev], ev)
    rm = moments(real, range(len(real.images)), ts.bands, k)
    for seed in (0, 1, 2):
        pick = np.sort(np.random.default_rng([seed, 11]).permutation(len(train.images))[: len(real.images)])
        r = radiometry_report(rm, moments(train, pick, ts.bands, k), names, ts.dtype)
        print(line(f"{ev} ({len(real.images)} tiles) vs {len(pick)} train tiles, draw {seed}", r))
    full[ev] = radiometry_report(rm, moments(train, range(len(train.images)), ts.bands, k), names, ts.dtype)
    print(line(f"{ev} vs all {len(train.images)} train tiles", full[ev]))
print()
print("Per class, test tiles vs all train tiles (Δ mean DN / std error % per band R, G, B; pixels of the test tiles):")
print()
print("| class | test pixels | R | G | B |")
print("|---|---:|---|---|---|")
for c in full["test"]["classes"]:
    if c["bands"] is None:
        print(f"| {c['class']} | {c['real_pixels']} | – | – | – |")
        continue
    cells = " | ".join(f"{b['mean_error_dn']:+.1f} / {b['std_error_pct']:+.0f}" for b in c["bands"])
    print(f"| {c['class']} | {c['real_pixels']} | {cells} |")
