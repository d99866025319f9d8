#!/bin/bash
# Re-creates the tile set and the real-only cpu-converge segmenter (seed 0) of the acceptance run, then the CSEBGAN half of the quality-per-minute bench.
set -e
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
W=/work/runs; T=$W/gid15-all-tiles; SEG=$W/gan/syn-csebgan-af/segmenter.pt
[ -f $T/tileset.json ] || .venv/bin/rsaug tile ../shared/data/gid15/images ../shared/data/gid15/labels_index --tile-size 224 -o $T --quiet
date
if [ ! -f $SEG ]; then mkdir -p $(dirname $SEG); .venv/bin/python - <<'PY'
from rsaug.io import TileSet
from rsaug.segmentation.config import preset
from rsaug.segmentation.training import train_segmenter
from rsaug.segmentation.files import save_segmenter
T="/work/runs/gid15-all-tiles"
ts=TileSet.open(T); cfg=preset("cpu-converge"); cfg.validate()
seg=train_segmenter(ts, config=cfg, seed=0, device="cpu", split="train", desc="U-Net")
save_segmenter(seg, "/work/runs/gan/syn-csebgan-af/segmenter.pt", ts.scheme, cfg, {"tileset": T, "seed": 0})
print("segmenter saved")
PY
fi
date
.venv/bin/python bench/bench_gan_quality.py $T -o $W/qpm --models csebgan --preset cpu-long --budgets 10,30,60,120 \
  --checkpoint-every 200 --calib-steps 100 --segmenter $SEG --split test --seed 0
date
# Session 12, the SPADE half on the same machine (reuses the CSEBGAN run and evaluation above):
# .venv/bin/python bench/bench_gan_quality.py $T -o $W/qpm --models csebgan spade --preset cpu-long --budgets 10,30,60,120 \
#   --checkpoint-every 200 --calib-steps 100 --segmenter $SEG --split test --seed 0
