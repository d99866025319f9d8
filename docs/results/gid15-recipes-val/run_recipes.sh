#!/bin/bash
# issue 10 training-side recipes probe (val split, 1 seed), resumable: re-run to continue
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
.venv/bin/rsaug benchmark-augmentation /work/runs/gid15-all-tiles -s base=/work/runs/exp/syn-base \
  -s bn64hist=/work/runs/exp/syn-bn64-hist-pc --preset cpu-converge \
  --arms real,real+synthetic,real+bn64hist~pretrain,real+bn64hist~anneal,real+bn64hist~w0.5 \
  --seeds 1 --test-split val --select last --real-fractions 0.25 -o /work/runs/exp/bench-val
