#!/bin/bash
# cpu-long CSEBGAN on the 564 shared GID-15 tiles that are not the demo's 45 (resumable: re-run this script)
cd /work/runs/ship
export OMP_WAIT_POLICY=PASSIVE
R=""; [ -f run/checkpoints/last.ckpt ] && R="--resume"
/work/main/.venv/bin/rsaug train tiles -o run --preset cpu-long --seed 0 $R
