#!/bin/bash
# pause the acceptance at a run boundary, train cpu-small + --lambda-moments 10, evaluate on val, resume the acceptance
A=/work/runs/acc
n0=$(find $A/runs -name '*.json' | wc -l)
while [ $(find $A/runs -name '*.json' | wc -l) -le $n0 ]; do sleep 3; done
pkill -TERM -f "benchmark-augmentation"; while pgrep -f "benchmark-augmentation" >/dev/null; do sleep 2; done
echo "acceptance paused at $(find $A/runs -name '*.json' | wc -l) runs $(date)"
cd /work/accwt2
export PYTHONPATH=/work/accwt2 OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles; G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
if [ ! -f $G/csebgan-mom.done ]; then
  if [ -f $G/csebgan-mom/checkpoints/last.ckpt ]; then run train $T -o $G/csebgan-mom --resume --quiet
  else run train $T --preset cpu-small --seed 0 --spatial-noise 0 --lambda-moments 10 -o $G/csebgan-mom --quiet; fi
  touch $G/csebgan-mom.done; echo "trained $(date)"
fi
[ -f /work/runs/s5/eval-mom/evaluation.json ] || run evaluate $G/csebgan-mom -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s5/eval-mom --seed 0 --quiet
echo "evaluated $(date)"
bash /work/runs/s5/acc.sh
