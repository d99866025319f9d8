"""Re-estimate the EMA generator's BatchNorm running statistics of a checkpoint on N batches of training crops
(what the trainer does with `ema_bn_batches=N`) and save a copy of the checkpoint with the new statistics."""
import sys
import numpy as np, torch
from rsaug.gan import load_generator
from rsaug.gan.checkpoint import load_checkpoint
from rsaug.gan.networks.generator import to_model_labels
from rsaug.gan.training_state import refresh_batchnorm
from rsaug.io import TileSet
from rsaug.segmentation import load_tiles

src, tiles, dst, nb = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(2)
state = load_checkpoint(src)
gen = load_generator(src, device="cpu", ema=True)
ts = TileSet.open(tiles); K = ts.scheme.num_classes
train = load_tiles(ts, ["train"], "real")
rng = np.random.default_rng(12345); g = torch.Generator().manual_seed(12345)
bs, crop = 4, int(state["train_config"]["crop_size"])
batches = []
for _ in range(nb):
    ms = []
    for i in rng.choice(len(train.masks), bs, replace=False):
        y, x = rng.integers(0, train.masks[i].shape[0] - crop + 1, 2)
        ms.append(train.masks[i][y:y + crop, x:x + crop])
    batches.append((to_model_labels(torch.from_numpy(np.stack(ms)), K), gen.net.sample_noise(bs, generator=g, device="cpu")))
with torch.no_grad():
    refresh_batchnorm(gen.net, batches)
new = gen.net.state_dict()
for k in state["G_ema"]:
    state["G_ema"][k] = new[k].detach().clone()
state.setdefault("notes", []).append(f"G_ema BatchNorm statistics re-estimated on {nb} x {bs} crops of {crop} px")
torch.save(state, dst)
print("saved", dst)
