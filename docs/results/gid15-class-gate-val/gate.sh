#!/bin/bash
# Class-gate probe on the val split (issue 10 tuning; test split untouched): real vs aligned+FreeMask CSEBGAN tiles
# (the acceptance run's set) vs the same with the class gate at 0.3 and 0.5; 3 paired seeds, full size, last iterate.
cd /work/gatewt
export OMP_WAIT_POLICY=PASSIVE PYTHONPATH=/work/gatewt
G=/work/runs/gan; T=/work/runs/gid15-all-tiles; R=.venv/bin/rsaug
for g in 0.3 0.5; do
  n=syn-csebgan-afg${g#0.}
  [ -f $G/$n/tileset.json ] || $R filter $G/syn-csebgan -o $G/$n --real $T --align histogram --align-per-class \
     --segmenter $G/syn-csebgan-af/segmenter.pt --min-kept-share $g --seed 0 --overwrite --quiet || exit 1
done
$R benchmark-augmentation $T -s af=$G/syn-csebgan-af -s afg3=$G/syn-csebgan-afg3 -s afg5=$G/syn-csebgan-afg5 \
  --preset cpu-converge --arms real,real+af,real+afg3,real+afg5 --seeds 3 --real-fractions "" \
  --test-split val --val-every 0 --select last -o /work/runs/gate-val --quiet
echo "gate exit $? $(date)"
