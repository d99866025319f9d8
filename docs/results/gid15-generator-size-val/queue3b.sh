#!/bin/bash
# cpu-small preset (spatial noise 0.25) + 3 upsamplings (8 x 8 coarsest map); then both preset-level runs evaluated on val
cd /work/s9wt
export PYTHONPATH=/work/s9wt OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles
G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
while pgrep -f "s9/queue2.sh" >/dev/null; do sleep 10; done
n=csebgan-sn-up3
if [ ! -f $G/$n.done ]; then
  if [ -f $G/$n/checkpoints/last.ckpt ]; then run train $T -o $G/$n --resume --quiet
  else run train $T --preset cpu-small --seed 0 --num-upsampling 3 -o $G/$n --quiet; fi
  touch $G/$n.done; echo "$n done $(date)"
fi
[ -f /work/runs/s9/eval-sn/evaluation.json ] || run evaluate $G/csebgan-sn $G/csebgan-sn-up3 -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s9/eval-sn --seed 0 --quiet
echo "eval done $(date)"
[ -f /work/runs/s9/size_probe_sn.md ] || $PY /work/main/docs/results/gid15-generator-levers-val/size_probe.py $T $G/csebgan-sn $G/csebgan-sn-up3 > /work/runs/s9/size_probe_sn.md
echo "all done $(date)"
