#!/bin/bash
# The demo's stages 2-4 with --generator train (cpu-small, 400 steps) on the same demo tiles as demo-bundled.
cd /work/runs/ship; export OMP_WAIT_POLICY=PASSIVE; R=/work/main/.venv/bin/rsaug; T=demo-bundled/tiles; O=demo-train
date
$R train $T -o $O/run --preset cpu-small --steps 400 --seed 0
$R synthesize --checkpoint $O/run/checkpoints/last.ckpt $T -o $O/synthetic --double-rare-classes --seed 0
$R evaluate $O/run/checkpoints/last.ckpt --tiles $T -o $O/evaluation --label "CSEBGAN (demo)" --segmenter-iterations 150 --diversity-masks 8 --csd-masks 4 --seed 0
date
