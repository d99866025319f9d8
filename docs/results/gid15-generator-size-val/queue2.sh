#!/bin/bash
# the current cpu-small preset (spatial noise 0.25, zero padding) as the baseline of the preset-level comparison
cd /work/s9wt
export PYTHONPATH=/work/s9wt OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles
G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
while pgrep -f "s9/queue.sh" >/dev/null; do sleep 10; done
n=csebgan-sn; 
if [ ! -f $G/$n.done ]; then
  if [ -f $G/$n/checkpoints/last.ckpt ]; then run train $T -o $G/$n --resume --quiet
  else run train $T --preset cpu-small --seed 0 -o $G/$n --quiet; fi
  touch $G/$n.done; echo "$n done $(date)"
fi
