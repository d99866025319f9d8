#!/bin/bash
# issue 10: how many steps does the cpu-converge U-Net need? real-only, seed 0, 1600 and 3200 steps (cosine over
# the whole run), validation every 400 steps; evaluated on the val split (tuning data only, never test)
cd /work/main
export OMP_WAIT_POLICY=PASSIVE PYTHONPATH=/work/accwt
T=/work/runs/gid15-all-tiles
for n in 3200; do
  .venv/bin/rsaug benchmark-augmentation $T --preset cpu-converge --arms real --seeds 1 --real-fractions "" \
    --iterations $n --val-every 400 --test-split val --select last -o /work/runs/conv-$n --quiet
  echo "conv $n rc=$? $(date)"
done
