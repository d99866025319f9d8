#!/bin/bash
# second seed of the cpu-small preset and of the preset + 3 upsamplings: is the at-size bias seed noise?
cd /work/s9wt
export PYTHONPATH=/work/s9wt OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles
G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
while pgrep -f "s9/queue5.sh" >/dev/null; do sleep 10; done
train() {  # name, extra args
  local n=$1; shift
  [ -f $G/$n.done ] && return 0
  if [ -f $G/$n/checkpoints/last.ckpt ]; then run train $T -o $G/$n --resume --quiet
  else run train $T --preset cpu-small --seed 1 -o $G/$n --quiet "$@"; fi
  touch $G/$n.done; echo "$n done $(date)"
}
train csebgan-sn-s1
train csebgan-sn-up3-s1 --num-upsampling 3
[ -f /work/runs/s9/eval-s1/evaluation.json ] || run evaluate $G/csebgan-sn-s1 $G/csebgan-sn-up3-s1 -t $T --split val \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s9/eval-s1 --seed 0 --quiet
echo "eval done $(date)"
[ -f /work/runs/s9/size_probe_s1.md ] || $PY /work/main/docs/results/gid15-generator-levers-val/size_probe.py $T $G/csebgan-sn-s1 $G/csebgan-sn-up3-s1 > /work/runs/s9/size_probe_s1.md
echo "all done $(date)"
