#!/bin/bash
cd /work/accwt
export PYTHONPATH=/work/accwt OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles
G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
if [ ! -f $G/csebgan-fd.done ]; then
  if [ -f $G/csebgan-fd/checkpoints/last.ckpt ]; then run train $T -o $G/csebgan-fd --resume --quiet
  else run train $T --preset cpu-small --seed 0 --spatial-noise 0 --feature-d vgg -o $G/csebgan-fd --quiet; fi
  touch $G/csebgan-fd.done
fi
date
