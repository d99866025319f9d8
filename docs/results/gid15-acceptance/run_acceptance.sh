#!/bin/bash
# Issue 10 acceptance benchmark on the GID-15 test split: re-creates every input with seeded commands and runs
# (or resumes) the benchmark. Resumable: re-run to continue; finished runs are reused when their protocol key
# matches (the tile sets' pixel fingerprints are part of it). Run from the repository root:
#   W=/work/runs bash docs/results/gid15-acceptance/run_acceptance.sh
# To resume from the committed run files on a fresh machine: copy docs/results/gid15-acceptance/runs to $W/acc/runs
# first (they are only reused if the re-created synthetic sets have the same pixels: same torch build and CPU).
set -e
W=${W:-/work/runs}
export OMP_WAIT_POLICY=PASSIVE
R=.venv/bin/rsaug
T=$W/gid15-all-tiles
G=$W/gan
mkdir -p $G
[ -f $T/tileset.json ] || $R tile ../shared/data/gid15/images ../shared/data/gid15/labels_index --tile-size 224 -o $T --quiet
train() {  # name, extra args: cpu-small, seed 0, resumable
  local n=$1; shift
  [ -f $G/$n.done ] && return 0
  if [ -f $G/$n/checkpoints/last.ckpt ]; then $R train $T -o $G/$n --resume --quiet "$@"
  else $R train $T --preset cpu-small --seed 0 -o $G/$n --quiet "$@"; fi
  touch $G/$n.done
}
train csebgan --spatial-noise 0   # the paper's generator (spatial noise hurt downstream on val)
train spade --model spade
[ -f $G/syn-csebgan/tileset.json ] || $R synthesize -c $G/csebgan $T -o $G/syn-csebgan --seed 0 --overwrite --quiet
[ -f $G/syn-csebgan-af/tileset.json ] || $R filter $G/syn-csebgan -o $G/syn-csebgan-af --real $T --align histogram \
   --align-per-class --train-segmenter cpu-converge --seed 0 --overwrite --quiet
[ -f $G/syn-spade/tileset.json ] || $R synthesize -c $G/spade $T -o $G/syn-spade --seed 0 --overwrite --quiet
[ -f $G/syn-spade-af/tileset.json ] || $R filter $G/syn-spade -o $G/syn-spade-af --real $T --align histogram \
   --align-per-class --segmenter $G/syn-csebgan-af/segmenter.pt --seed 0 --overwrite --quiet
$R benchmark-augmentation $T -s csebgan=$G/syn-csebgan-af -s spade=$G/syn-spade-af --preset cpu-converge \
  --arms real,real+csebgan,real+spade,classic,classic+csebgan -o $W/acc --quiet
