#!/bin/bash
# cpu-small preset (spatial noise 0.25) + 3 upsamplings + moment loss 10; evaluated on val like the others
cd /work/s9wt
export PYTHONPATH=/work/s9wt OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles
G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
while pgrep -f "s9/queue3b.sh" >/dev/null; do sleep 10; done
n=csebgan-sn-up3-mom
if [ ! -f $G/$n.done ]; then
  if [ -f $G/$n/checkpoints/last.ckpt ]; then run train $T -o $G/$n --resume --quiet
  else run train $T --preset cpu-small --seed 0 --num-upsampling 3 --lambda-moments 10 -o $G/$n --quiet; fi
  touch $G/$n.done; echo "$n done $(date)"
fi
[ -f /work/runs/s9/eval-mom/evaluation.json ] || run evaluate $G/$n -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s9/eval-mom --seed 0 --quiet
echo "all done $(date)"
