#!/bin/bash
# issue 10 FreeMask probe (val split, 1 seed), resumable: re-run to continue
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
set -e
if [ ! -f /work/runs/exp/syn-fm/tileset.json ]; then
  .venv/bin/rsaug filter /work/runs/exp/syn-bn64-hist-pc -o /work/runs/exp/syn-fm --train-segmenter cpu-converge \
    --real /work/runs/gid15-all-tiles --seed 0 --overwrite --quiet
  echo FILTER DONE $(date)
fi
.venv/bin/rsaug benchmark-augmentation /work/runs/gid15-all-tiles -s base=/work/runs/exp/syn-base \
  -s bn64hist=/work/runs/exp/syn-bn64-hist-pc -s fm=/work/runs/exp/syn-fm --preset cpu-converge \
  --arms real,real+base,real+bn64hist,real+bn64hist~pretrain,real+bn64hist~anneal,real+bn64hist~w0.5,real+fm,real+fm~pretrain \
  --seeds 1 --test-split val --select last --val-every 160 --real-fractions 0.25 -o /work/runs/exp/bench-val --quiet
echo BENCH DONE $(date)
