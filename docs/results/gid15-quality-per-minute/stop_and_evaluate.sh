#!/bin/bash
# Stops the orphaned cpu-long training (pid $1) once a checkpoint covers 120 training minutes, then runs the
# (updated) bench, which evaluates the snapshots without training further.
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
PID=$1
while kill -0 $PID 2>/dev/null; do
  if .venv/bin/python -c "
import sys; sys.path.insert(0,'bench')
import bench_gan_quality as b
from pathlib import Path
sys.exit(0 if b.budget_covered(Path('/work/runs/qpm/csebgan/run'), 120, False) else 1)"; then
    echo "$(date) budget covered: SIGTERM $PID"; kill -TERM $PID; break
  fi
  sleep 30
done
while kill -0 $PID 2>/dev/null; do sleep 5; done
echo "$(date) training process ended"
.venv/bin/python bench/bench_gan_quality.py /work/runs/gid15-all-tiles -o /work/runs/qpm --models csebgan --preset cpu-long \
  --budgets 10,30,60,120 --checkpoint-every 200 --calib-steps 100 --segmenter /work/runs/gan/syn-csebgan-af/segmenter.pt \
  --split test --seed 0
echo "$(date) bench done"
