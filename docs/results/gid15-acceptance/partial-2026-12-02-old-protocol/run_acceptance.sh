#!/bin/bash
# 1) demo resumed on the existing demo output (exercises the new filter stage + benchmark), 2) full test suite,
# 3) issue 10 acceptance run (see queue5.sh)
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
while pgrep -f "bench-val" >/dev/null; do sleep 20; done
echo "demo-resume start $(date)"
cp -al /work/runs/demo-bn64 /work/runs/demo-resume 2>/dev/null || true
.venv/bin/rsaug demo -o /work/runs/demo-resume > /work/runs/gan/demo-resume.out 2>&1
echo "demo-resume done $(date) rc=$?"
echo "tests start $(date)"
.venv/bin/python -m pytest -q -x -p no:cacheprovider tests > /work/runs/gan/tests.out 2>&1
echo "tests done $(date) rc=$?"
echo "acceptance start $(date)"
.venv/bin/rsaug benchmark-augmentation /work/runs/gid15-all-tiles -s csebgan=/work/runs/exp/syn-fm -s spade=/work/runs/gan/syn-spade-af \
  --preset cpu-converge --arms real,real+csebgan,real+spade,classic,classic+csebgan -o /work/runs/acceptance --quiet
echo "acceptance done $(date) rc=$?"
