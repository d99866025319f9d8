#!/bin/bash
# After train.sh: evaluate the last checkpoint on the test split (floor from train), export it with its scores.
cd /work/runs/ship
export OMP_WAIT_POLICY=PASSIVE
while pgrep -f "bash train\.sh" >/dev/null; do sleep 20; done
date
[ -f eval/evaluation.json ] || /work/main/.venv/bin/rsaug evaluate run/checkpoints/last.ckpt --tiles tiles -o eval \
  --label "CSEBGAN cpu-long (bundled)" --split test --fid-floor-split train --seed 0
date
/work/main/.venv/bin/rsaug export-generator run gid15-csebgan-cpu-long.ckpt --evaluation eval/evaluation.json --overwrite
date
