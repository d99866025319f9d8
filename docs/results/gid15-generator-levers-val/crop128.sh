#!/bin/bash
# pause the acceptance at a run boundary, train cpu-small with 128-px crops, batch 1 (same pixels per step), probe + evaluate, resume
A=/work/runs/acc
if pgrep -f "benchmark-augmentation" >/dev/null; then
  n0=$(find $A/runs -name '*.json' | wc -l)
  while [ $(find $A/runs -name '*.json' | wc -l) -le $n0 ]; do sleep 3; done
  pkill -TERM -f moments.sh; pkill -TERM -f "benchmark-augmentation"; while pgrep -f "benchmark-augmentation" >/dev/null; do sleep 2; done
fi
echo "acceptance paused at $(find $A/runs -name '*.json' | wc -l) runs $(date)"
cd /work/accwt2
export PYTHONPATH=/work/accwt2 OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles; G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
if [ ! -f $G/csebgan-c128.done ]; then
  if [ -f $G/csebgan-c128/checkpoints/last.ckpt ]; then run train $T -o $G/csebgan-c128 --resume --quiet
  else run train $T --preset cpu-small --seed 0 --spatial-noise 0 --crop-size 128 --batch-size 1 -o $G/csebgan-c128 --quiet; fi
  touch $G/csebgan-c128.done; echo "trained $(date)"
fi
D=/work/main/docs/results/gid15-generator-levers-val
(cd $D && $PY size_probe.py $T $G/csebgan-c128 > /work/runs/s5/size_c128.md)
[ -f /work/runs/s5/eval-c128/evaluation.json ] || run evaluate $G/csebgan-c128 -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s5/eval-c128 --seed 0 --quiet
echo "evaluated $(date)"
bash /work/runs/s5/acc.sh
