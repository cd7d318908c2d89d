#!/usr/bin/env bash
# rl-zoo3 use: train SAC_OFEXi from our YAML, then watch it, then the stock SAC baseline.
# Every rl-zoo3 flag works (-n, -f, --seed, --eval-freq, -conf, --device, --progress, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

$PY -m sb3_ofexi.zoo train --algo sac_ofexi --env Pendulum-v1 -conf hyperparams/sac_ofexi_prune_b.yml \
    -f logs --seed 0 --eval-freq 1000 --progress
$PY -m sb3_ofexi.zoo enjoy --algo sac_ofexi --env Pendulum-v1 -f logs --no-render -n 400 --deterministic

# the SAC baseline, stock stable_baselines3.SAC through the same entry point
$PY -m sb3_ofexi.zoo train --algo sac --env Pendulum-v1 -conf hyperparams/sac.yml -f logs --seed 0 --eval-freq 1000
# full-size runs (GPU recommended): --env Hopper-v5 -conf hyperparams/sac_ofexi_prune_b.yml --device cuda
