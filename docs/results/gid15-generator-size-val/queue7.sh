#!/bin/bash
# cpu-small preset + generator learning rate 4e-4 (1e-4 default): is the at-size bias undertraining?
cd /work/s9wt
export PYTHONPATH=/work/s9wt OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles
G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
n=csebgan-sn-lrg4
if [ ! -f $G/$n.done ]; then
  if [ -f $G/$n/checkpoints/last.ckpt ]; then run train $T -o $G/$n --resume --quiet
  else run train $T --preset cpu-small --seed 0 --lr-g 4e-4 -o $G/$n --quiet; fi
  touch $G/$n.done; echo "$n done $(date)"
fi
[ -f /work/runs/s9/eval-lrg/evaluation.json ] || run evaluate $G/$n -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s9/eval-lrg --seed 0 --quiet
echo "eval done $(date)"
[ -f /work/runs/s9/size_probe_lrg.md ] || $PY /work/main/docs/results/gid15-generator-levers-val/size_probe.py $T $G/$n > /work/runs/s9/size_probe_lrg.md
echo "all done $(date)"
