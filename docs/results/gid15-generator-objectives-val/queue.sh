#!/bin/bash
# issue 11, session 13: the three open val comparisons of the cpu-small preset (one at a time), then one evaluation on val
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
echo "start $(date)"
train csebgan-sn-oasisd --seed 0 --conductor-objective oasis
train csebgan-sn-lrg4-s1 --seed 1 --lr-g 4e-4
train csebgan-sn-c128b4 --seed 0 --crop-size 128 --batch-size 4 --steps 200
[ -f /work/runs/s13/eval/evaluation.json ] || run evaluate $G/csebgan-sn-oasisd $G/csebgan-sn-lrg4-s1 $G/csebgan-sn-c128b4 -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s13/eval --seed 0 --quiet
echo "all done $(date)"
