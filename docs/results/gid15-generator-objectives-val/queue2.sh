#!/bin/bash
# issue 11, session 13: does the VGG loss still pay beside D (and beside D + the OASIS conductor)? cpu-small, seed 0, val
cd /work/s13wt
export PYTHONPATH=/work/s13wt OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles
G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
train() {  # name, extra args
  local n=$1; shift
  [ -f $G/$n.done ] && return 0
  if [ -f $G/$n/checkpoints/last.ckpt ]; then run train $T -o $G/$n --resume --quiet
  else run train $T --preset cpu-small -o $G/$n --quiet "$@"; fi
  touch $G/$n.done; echo "$n done $(date)"
}
while pgrep -f "bash queue\.sh" >/dev/null; do sleep 10; done
echo "start $(date)"
train csebgan-sn-novgg --seed 0 --lambda-vgg 0
train csebgan-sn-oasisd-novgg --seed 0 --conductor-objective oasis --lambda-vgg 0
[ -f /work/runs/s13/eval2/evaluation.json ] || run evaluate $G/csebgan-sn-novgg $G/csebgan-sn-oasisd-novgg -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s13/eval2 --seed 0 --quiet
echo "all done $(date)"
