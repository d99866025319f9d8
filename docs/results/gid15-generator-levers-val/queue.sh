#!/bin/bash
# issue 11 variants on val: cpu-small seed 0, spatial noise 0 (the acceptance generator's recipe) + one lever each
cd /work/accwt
export PYTHONPATH=/work/accwt OMP_WAIT_POLICY=PASSIVE
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
while pgrep -f fd.sh >/dev/null; do sleep 20; done
train csebgan-fd --feature-d vgg
train csebgan-oasis --conductor-objective oasis --no-discriminator --lambda-vgg 0
[ -f /work/runs/s5/eval/evaluation.json ] || run evaluate $G/csebgan $G/csebgan-fd $G/csebgan-oasis -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s5/eval --seed 0 --quiet
echo "eval done $(date)"

