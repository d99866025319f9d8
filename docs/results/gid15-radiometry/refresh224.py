"""Issue 11 diagnosis 2: refresh the EMA generator's BatchNorm statistics on whole 224-px training masks
(instead of the trainer's 64-px crops) and compare the eval-mode radiometry with the real test tiles."""
import json, sys
import numpy as np, torch
from rsaug.gan import load_generator
from rsaug.gan.networks.generator import to_model_labels
from rsaug.gan.training_state import refresh_batchnorm
from rsaug.io import TileSet
from rsaug.segmentation import load_tiles

ckpt, tiles, out = sys.argv[1], sys.argv[2], sys.argv[3]
torch.set_num_threads(2)
ts = TileSet.open(tiles)
K = ts.scheme.num_classes
test = load_tiles(ts, ["test"], "real"); train = load_tiles(ts, ["train"], "real")
real = np.stack(test.images).astype(np.float64); masks = np.stack(test.masks)
res = {"real": {"mean": real.mean(axis=(0, 2, 3)).round(2).tolist(), "std": real.std(axis=(0, 2, 3)).round(2).tolist()}}
for nb, bs, crop in ((8, 8, 224), (32, 8, 224), (8, 4, 64), (64, 4, 64)):
    gen = load_generator(ckpt, device="cpu", ema=True)
    rng = np.random.default_rng(0)
    batches = []
    g = torch.Generator().manual_seed(0)
    for b in range(nb):
        idx = rng.choice(len(train.masks), bs, replace=False)
        ms = []
        for i in idx:
            m = train.masks[i]
            y, x = rng.integers(0, 224 - crop + 1, 2)
            ms.append(m[y:y + crop, x:x + crop])
        lab = to_model_labels(torch.from_numpy(np.stack(ms)), K)
        batches.append((lab, gen.net.sample_noise(bs, generator=g, device="cpu")))
    with torch.no_grad():
        refresh_batchnorm(gen.net, batches)
        outs = [gen.to_raster(gen.generate(torch.from_numpy(masks[i:i + 8]), seed=1000 + i)) for i in range(0, len(masks), 8)]
    fake = np.concatenate(outs).astype(np.float64)
    key = f"refresh_{nb}x{bs}@{crop}"
    res[key] = {"mean": fake.mean(axis=(0, 2, 3)).round(2).tolist(), "std": fake.std(axis=(0, 2, 3)).round(2).tolist()}
    print(key, res[key], flush=True)
print("real", res["real"])
json.dump(res, open(out, "w"), indent=1)
