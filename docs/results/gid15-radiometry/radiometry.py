"""Issue 11 diagnosis: where does the radiometric bias of generated tiles come from?

Generates the real test masks with one checkpoint in several modes and compares per-band mean/std (overall and per
class) with the real test tiles: EMA vs raw weights, BatchNorm in eval mode (running stats) vs train mode (batch
stats of the 224-px test batch).
"""
import json, sys
import numpy as np, torch
from rsaug.gan import load_generator
from rsaug.io import TileSet
from rsaug.segmentation import load_tiles

ckpt, tiles, out = sys.argv[1], sys.argv[2], sys.argv[3]
torch.set_num_threads(2)
ts = TileSet.open(tiles)
test = load_tiles(ts, ["test"], "real")
K = ts.scheme.num_classes
real = np.stack(test.images).astype(np.float64)  # N,C,H,W
masks = np.stack(test.masks)

def stats(imgs):
    o = {"mean": imgs.mean(axis=(0, 2, 3)).round(2).tolist(), "std": imgs.std(axis=(0, 2, 3)).round(2).tolist()}
    per = {}
    for k in range(K):
        sel = masks == k
        if sel.sum() < 1000:
            continue
        px = imgs.transpose(1, 0, 2, 3)[:, sel]
        per[ts.scheme.classes[k].name] = {"mean": px.mean(1).round(1).tolist(), "std": px.std(1).round(1).tolist()}
    o["per_class"] = per
    unk = masks == 255
    if unk.any():
        px = imgs.transpose(1, 0, 2, 3)[:, unk]
        o["unknown"] = {"mean": px.mean(1).round(1).tolist(), "std": px.std(1).round(1).tolist()}
    return o

res = {"real": stats(real)}
for ema in (True, False):
    gen = load_generator(ckpt, device="cpu", ema=ema)
    for bn in ("eval", "train"):
        outs = []
        with torch.no_grad():
            for i in range(0, len(masks), 8):
                m = torch.from_numpy(masks[i:i + 8])
                if bn == "train":
                    gen.net.train()
                img = gen.generate(m, seed=1000 + i)
                gen.net.eval()
                outs.append(gen.to_raster(img))
        fake = np.concatenate(outs).astype(np.float64)
        key = f"{'ema' if ema else 'raw'}-bn_{bn}"
        res[key] = stats(fake)
        print(key, res[key]["mean"], res[key]["std"], flush=True)
print("real", res["real"]["mean"], res["real"]["std"])
json.dump(res, open(out, "w"), indent=1)
