#!/bin/bash
# issue 11: DiffAugment lever on val, after the class-gate probe (one heavy job at a time)
while pgrep -f gate.sh >/dev/null; do sleep 20; done
cd /work/gatewt
export PYTHONPATH=/work/gatewt OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles; G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
echo "start $(date)"
if [ ! -f $G/csebgan-da.done ]; then
  if [ -f $G/csebgan-da/checkpoints/last.ckpt ]; then run train $T -o $G/csebgan-da --resume --quiet
  else run train $T --preset cpu-small --seed 0 --spatial-noise 0 --diffaug color,translation,cutout -o $G/csebgan-da --quiet; fi || exit 1
  touch $G/csebgan-da.done; echo "trained $(date)"
fi
[ -f /work/runs/s7/eval-da/evaluation.json ] || run evaluate $G/csebgan-da -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s7/eval-da --seed 0 --quiet
echo "evaluated $(date)"
