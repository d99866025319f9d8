#!/bin/bash
# issue 11, session 13 (after the CI check): the no-VGG recipe at the preset's time (1370 steps), and the OASIS
# conductor beside D + VGG on a second seed; cpu-small, val
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
until grep -q "ci exit" /work/runs/ci-s13.log; do sleep 10; done
echo "start $(date)"
train csebgan-sn-novgg-1370 --seed 0 --lambda-vgg 0 --steps 1370
train csebgan-sn-oasisd-s1 --seed 1 --conductor-objective oasis
[ -f /work/runs/s13/eval3/evaluation.json ] || run evaluate $G/csebgan-sn-novgg-1370 $G/csebgan-sn-oasisd-s1 -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s13/eval3 --seed 0 --quiet
echo "all done $(date)"
