#!/bin/bash
# After after.sh: copy the exported generator into the package, then the demo with it and with a demo-trained generator.
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
while pgrep -f "bash after\.sh" >/dev/null; do sleep 20; done
mkdir -p rsaug/data/generators
cp /work/runs/ship/gid15-csebgan-cpu-long.ckpt /work/runs/ship/gid15-csebgan-cpu-long.ckpt.json rsaug/data/generators/
date; .venv/bin/rsaug demo --out /work/runs/ship/demo-bundled --seed 0; date
.venv/bin/rsaug demo --out /work/runs/ship/demo-train --generator train --seed 0; date
