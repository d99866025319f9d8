#!/bin/bash
# after SPADE training: synthesize one sample per training mask, align (per-class histogram) + FreeMask-filter
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
R=.venv/bin/rsaug
T=/work/runs/gid15-all-tiles
while pgrep -f queue1.sh >/dev/null; do sleep 20; done
set -e
[ -f /work/runs/gan/syn-spade/tileset.json ] || $R synthesize -c /work/runs/gan/spade-cpu $T -o /work/runs/gan/syn-spade --seed 0 --quiet
echo "SPADE synth done $(date)"
[ -f /work/runs/gan/syn-spade-af/tileset.json ] || $R filter /work/runs/gan/syn-spade -o /work/runs/gan/syn-spade-af --real $T \
   --align histogram --align-per-class --segmenter /work/runs/exp/syn-fm/segmenter.pt --seed 0 --quiet
echo "SPADE filter done $(date)"
