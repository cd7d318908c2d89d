#!/usr/bin/env bash
# The MuJoCo sweep behind docs/RESULTS.md: METHODS x SEEDS on each of ENVS, STEPS env steps a run.
#
# Resumable: every run checkpoints (sb3-ofexi train --checkpoint-minutes), so re-running this script
# skips finished runs and continues an interrupted one from its last checkpoint. Runs go seed by seed
# (every method of seed 0, then seed 1, ...) so a sweep cut short still compares all methods.
# One process per copy: run one copy per core, e.g. one per ENVS value:
#   ENVS=Hopper-v5 bash scripts/results.sh & ENVS=HalfCheetah-v5 bash scripts/results.sh &
# Copies may share a task: each run is locked (flock, released when its process ends, even if
# killed) and a copy passes over the runs another copy holds, e.g. two copies on one task:
#   ENVS=HalfCheetah-v5 bash scripts/results.sh & ENVS=HalfCheetah-v5 SEEDS="2 1 0" bash scripts/results.sh &
# Then: sb3-ofexi measure runs/results/ENV (re-time every run in one quiet sitting), and
#   sb3-ofexi results docs/results --publish runs/results   (small files only; writes docs/RESULTS.md)
set -u
ENVS=${ENVS:-"Hopper-v5 HalfCheetah-v5"}
STEPS=${STEPS:-30000}
METHODS=${METHODS:-"sac polyprune ofe eaudesac prune-b ofe-big"}  # cheapest first
SEEDS=${SEEDS:-"0 1 2"}
OUT=${OUT:-runs/results}
EVAL_FREQ=${EVAL_FREQ:-3000}
EVAL_EPISODES=${EVAL_EPISODES:-5}
SB3_OFEXI=${SB3_OFEXI:-sb3-ofexi}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one core per process

for env in $ENVS; do
  for seed in $SEEDS; do
    for method in $METHODS; do
      if [ -f "$OUT/$env/$method/seed$seed/summary.json" ]; then continue; fi
      mkdir -p "$OUT/$env/.locks"
      exec 9>"$OUT/$env/.locks/$method-seed$seed"
      if ! flock -n 9; then  # another copy is running it
        exec 9>&-
        continue
      fi
      if [ -f "$OUT/$env/$method/seed$seed/summary.json" ]; then exec 9>&-; continue; fi  # ended meanwhile
      echo "=== $(date -u +%FT%TZ) $env $method seed $seed"
      $SB3_OFEXI train --env "$env" --method "$method" --seed "$seed" --timesteps "$STEPS" \
        --eval-freq "$EVAL_FREQ" --eval-episodes "$EVAL_EPISODES" --out "$OUT/$env" --no-progress \
        || echo "!!! $env $method seed $seed failed (see $OUT/$env/$method/seed$seed)"
      exec 9>&-
    done
  done
  $SB3_OFEXI report "$OUT/$env"
done
