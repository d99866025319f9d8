#!/bin/bash
# final figures on the TEST split: the generator of the "today" (acceptance run's, spatial noise 0) and the
# current cpu-small preset (spatial noise 0.25); same segmenter (real-only U-Net trained on the train split)
cd /work/s9wt
export PYTHONPATH=/work/s9wt OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
T=/work/runs/gid15-all-tiles
G=/work/runs/gan
run() { $PY -c "from rsaug.cli.main import cli; cli()" "$@"; }
while pgrep -f "s9/queue4.sh" >/dev/null; do sleep 10; done
[ -f /work/runs/s9/eval-test/evaluation.json ] || run evaluate $G/csebgan $G/csebgan-sn -t $T --split test \
   --segmenter $G/syn-csebgan-af/segmenter.pt -o /work/runs/s9/eval-test --seed 0 --quiet
echo "all done $(date)"
