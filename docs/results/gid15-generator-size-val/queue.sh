#!/bin/bash
# issue 11: size-dependent radiometry fixes on val: cpu-small seed 0, spatial noise 0 (the levers protocol) + one lever
cd /work/s9wt
export PYTHONPATH=/work/s9wt OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles
G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
train() {  # name, extra args
  local n=$1; shift
  [ -f $G/$n.done ] && return 0
  if [ -f $G/$n/checkpoints/last.ckpt ]; then run train $T -o $G/$n --resume --quiet
  else run train $T --preset cpu-small --seed 0 --spatial-noise 0 -o $G/$n --quiet "$@"; fi
  touch $G/$n.done; echo "$n done $(date)"
}
echo "start $(date)"
train csebgan-reflect --g-padding reflect
train csebgan-up3 --num-upsampling 3
[ -f /work/runs/s9/eval/evaluation.json ] || run evaluate $G/csebgan $G/csebgan-reflect $G/csebgan-up3 -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s9/eval --seed 0 --quiet
echo "eval done $(date)"
[ -f /work/runs/s9/size_probe.md ] || $PY /work/main/docs/results/gid15-generator-levers-val/size_probe.py $T $G/csebgan $G/csebgan-reflect $G/csebgan-up3 > /work/runs/s9/size_probe.md
echo "all done $(date)"
