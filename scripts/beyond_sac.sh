#!/usr/bin/env bash
# The "beyond SAC" comparison (issue 27): td3 vs td3-prune-b, tqc vs tqc-prune-b, and crossq, 3 seeds, on
# Pendulum-v1 (the YAML entries as they are) and Reacher-v5 (REACHER_STEPS env steps; td3-prune-b and tqc-prune-b at
# the small entries' sizes, Pendulum's: 4 OFE blocks of 32 units, 128x128 -- the paper's sizes would take ~10 core-hours
# a run here; the other entries as they are), one run at a time, one torch thread. On Reacher-v5 also a control,
# td3-ofe at td3-prune-b's starting sizes (CONTROLS).
#
#   bash scripts/beyond_sac.sh            # start / resume in the background (one core, niced as the study's runs)
#   bash scripts/beyond_sac.sh status     # what has finished
#   bash scripts/beyond_sac.sh measure    # re-time the finished runs whose models are on this machine
#   bash scripts/beyond_sac.sh publish    # small files + report per task into docs/demo/beyond-sac/ENV/
#
# Runs live in $BEYOND_DIR (default ~/sb3-ofexi-beyond, outside the work tree), each task's from a clone of the
# commit recorded when its sweep first starts (runs/ENV/commit), so editing the package never changes a running
# comparison; a method re-made after a change to it (REMADE) has its own commit, recorded when its runs first
# start (runs/ENV/METHOD.commit), and runs before the rest; 'sb3-ofexi compare' resumes an interrupted sweep where
# it stopped. The Python environment is the Hopper study's ($STUDY_DIR/venv, made by scripts/study.sh) with the
# clone first on PYTHONPATH.
# A session's machine is not kept for the next one: `start` first copies the runs already published (their
# summaries) and each task's commit back into $BEYOND_DIR, and rebuilds the checkpoints of the runs that
# `publish` parked mid-way in study/parked/beyond-sac/ (sb3_ofexi.harness.park; commit them), so the sweep goes
# on where it was. Each run times its exported policy and its training step when it ends (its models do not
# outlive the machine), under whatever else runs then.
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
BEYOND_DIR=${BEYOND_DIR:-$HOME/sb3-ofexi-beyond}
STUDY_DIR=${STUDY_DIR:-$HOME/sb3-ofexi-study}
NICE=${NICE:-10}  # as the Hopper study's runs: two thirds of a core each of the three (at 15 it got ~0.3 core, ~25 sessions)
METHODS=${METHODS:-td3,td3-prune-b,tqc-prune-b,tqc,crossq}  # tqc-prune-b before tqc: its Reacher-v5 seed 0 decides its nu early
SEEDS=3
REACHER_STEPS=${REACHER_STEPS:-50000}
# td3-prune-b: TD3_OFEXi's nu factors changed (1 -> 1/5, 1/25) after its Reacher-v5 runs at the task's commit
# pruned actor and critics to 0 units; those runs are kept in docs/demo/beyond-sac/td3-nu-as-given/. On
# Reacher-v5 it was re-made once more when its entry's nu_actor / nu_critic became prune-b's / 10 (its critics
# kept 4-5 of 128 first-layer units at prune-b's); those runs are in docs/demo/beyond-sac/td3-reacher-nu-preset/.
REMADE=${REMADE:-td3-prune-b}
# Controls, Reacher-v5 only, each at its own commit as a re-made method: td3-ofe at td3-prune-b's starting sizes
# (4 OFE blocks of 32 units, 128x128, no gates) tells what pruning costs there from what those sizes cost.
CONTROLS=${CONTROLS:-td3-ofe}
runs=$BEYOND_DIR/runs
python=$STUDY_DIR/venv/bin/python

pin_of() {  # ENV [METHOD]: the file that names the commit the task (or that re-made method) is pinned to
  if [ -n "${2:-}" ] && [[ ",$REMADE,$CONTROLS," == *",$2,"* ]]; then echo "$runs/$1/$2.commit"; else echo "$runs/$1/commit"; fi
}

source_dir() {  # ENV [METHOD]: the clone of the commit that task's sweep (or that re-made method) is pinned to
  local pin commit src
  pin=$(pin_of "$@")
  mkdir -p "$runs/$1"
  [ -f "$pin" ] || git -C "$repo" rev-parse HEAD >"$pin"
  commit=$(cat "$pin")
  src=$BEYOND_DIR/src/$commit
  if [ ! -f "$src/.ready" ]; then
    rm -rf "$src"
    git clone -q --no-checkout "$repo" "$src" && git -C "$src" checkout -q "$commit" && touch "$src/.ready" || return 1
  fi
  echo "$src"
}

cli() {  # ENV METHOD|- ARGS...: the package of that task's (or re-made method's) pinned commit
  local src
  src=$(source_dir "$1" "${2#-}") || return 1
  shift 2
  # torch.compile's cache, one per call: a run killed while gcc writes a kernel leaves a truncated .so behind
  local cache code
  cache=$(mktemp -d "$BEYOND_DIR/inductor-cache.XXXXXX")
  TORCHINDUCTOR_CACHE_DIR=$cache OMP_NUM_THREADS=1 PYTHONPATH=$src nice -n "$NICE" "$python" -m sb3_ofexi.cli "$@"
  code=$?
  rm -rf "$cache"
  return $code
}

reacher_hyperparams() {  # SRC OUT: the package's YAML files of a pinned commit, Reacher-v5 changed as said above
  local src=$1 out=$2
  mkdir -p "$out" && cp "$src"/hyperparams/*.yml "$out"/ || return 1
  "$python" - "$out" "$REACHER_STEPS" <<'PY'
import pathlib, sys
import yaml
out, steps = pathlib.Path(sys.argv[1]), int(sys.argv[2])
for path in out.glob("*.yml"):
    entries = yaml.safe_load(path.read_text())
    if "Reacher-v5" not in entries:
        continue
    entry = entries["Reacher-v5"]
    entry["n_timesteps"] = steps  # the budget of the runs: schedule points are not rescaled
    if path.stem in ("td3_ofexi_prune_b", "tqc_ofexi_prune_b", "td3_ofexi_ofe"):  # the last: a control's
        kwargs = eval(entry.get("policy_kwargs", "dict()"), {"dict": dict})  # as rl-zoo3 reads it
        kwargs["net_arch"] = [128, 128]
        entry.update(ofe_layers=4, ofe_units=32, policy_kwargs=f"dict(**{kwargs!r})")
    if path.stem in ("td3_ofexi_prune_b", "tqc_ofexi_prune_b"):
        starts = int(entry["learning_starts"])
        entry["xi_start"] = starts + round(0.2 * (steps - starts))  # 0.2 of the gradient steps, after learning_starts
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
PY
}

compare() {  # ENV METHODS PIN: those methods' runs on ENV, from the commit of PIN (a re-made method, or - the task's)
  local env=$1 methods=$2 pin=$3 src
  [ -n "$methods" ] || return 0
  if [ "$env" = Pendulum-v1 ]; then
    cli Pendulum-v1 "$pin" compare --env Pendulum-v1 --methods "$methods" --seeds $SEEDS --threads 1 --eval-episodes 10 \
      --out "$runs/Pendulum-v1"
  else
    # a re-made method reads the YAML files of its own commit (its entry may be what changed)
    hp=$runs/Reacher-v5/hyperparams
    [ "$pin" = - ] || hp=$runs/Reacher-v5/hyperparams-$pin
    src=$(source_dir Reacher-v5 "${pin#-}") || return 1
    [ -d "$hp" ] || reacher_hyperparams "$src" "$hp" || return 1
    cli Reacher-v5 "$pin" compare --env Reacher-v5 --methods "$methods" --seeds $SEEDS --threads 1 \
      --timesteps "$REACHER_STEPS" --eval-episodes 10 --hyperparams "$hp" --out "$runs/Reacher-v5"
  fi
}

sweep() {  # the re-made methods first (on both tasks), the controls (Reacher-v5), then the rest from each task's commit
  local method env others
  for method in ${REMADE//,/ }; do
    for env in Pendulum-v1 Reacher-v5; do compare "$env" "$method" "$method" || return 1; done
  done
  for method in ${CONTROLS//,/ }; do compare Reacher-v5 "$method" "$method" || return 1; done
  others=$(tr , '\n' <<<"$METHODS" | grep -vxF -f <(tr , '\n' <<<"$REMADE") | paste -sd, -)
  for env in Pendulum-v1 Reacher-v5; do compare "$env" "$others" - || return 1; done
}

restore_published() {  # the published runs and commits of each task, where this machine has none
  local published=$repo/docs/demo/beyond-sac env run dest f
  for env in Pendulum-v1 Reacher-v5; do
    [ -f "$published/$env/commit" ] || continue
    mkdir -p "$runs/$env"
    [ -f "$runs/$env/commit" ] || cp "$published/$env/commit" "$runs/$env/commit"
    cmp -s "$published/$env/commit" "$runs/$env/commit" || { echo "$env: $runs/$env/commit is not the published one" >&2; return 1; }
    for f in "$published/$env"/*.commit; do  # the re-made methods' commits
      [ -f "$f" ] && { [ -f "$runs/$env/${f##*/}" ] || cp "$f" "$runs/$env/"; }
    done
    for run in "$published/$env"/*/seed*/; do
      [ -f "$run/summary.json" ] || continue
      dest=$runs/$env/${run#"$published/$env/"}
      [ -f "$dest/summary.json" ] && continue
      mkdir -p "$dest"
      for f in summary.json evaluations.npz speed.json; do if [ -f "$run/$f" ]; then cp "$run/$f" "$dest/$f"; fi; done
    done
  done
  return 0
}

parked=$repo/study/parked/beyond-sac

each_run() {  # ENV METHOD SEED, one line a run of the comparison
  local methods
  for env in Pendulum-v1 Reacher-v5; do
    methods=$METHODS
    [ "$env" = Reacher-v5 ] && [ -n "$CONTROLS" ] && methods=$methods,$CONTROLS
    for method in ${methods//,/ }; do
      for seed in $(seq 0 $((SEEDS - 1))); do echo "$env $method $seed"; done
    done
  done
}

parking() {  # park|unpark|steps ARGS...: the repository's sb3_ofexi.harness.park
  PYTHONPATH=$repo "$python" -m sb3_ofexi.harness.park "$@"
}

unpark_runs() {  # the parked runs with more steps than this machine has of them
  local env method seed key
  while read -r env method seed; do
    key=$env/$method/seed$seed
    [ -f "$parked/$key/parked.json" ] && [ ! -f "$runs/$key/summary.json" ] || continue
    parking unpark --if-newer "$parked/$key" "$runs/$key" \
      || echo "!!! could not unpark $key: it starts from its own checkpoint, or from step 0" >&2
  done < <(each_run)
  return 0
}

park_runs() {  # the newest checkpoint of each unfinished run, when newer than the parked one; finished: removed
  local env method seed key
  while read -r env method seed; do
    key=$env/$method/seed$seed
    if [ -f "$runs/$key/summary.json" ] || [ -f "$repo/docs/demo/beyond-sac/$key/summary.json" ]; then
      rm -rf "${parked:?}/$key"; continue
    fi
    [ -d "$runs/$key" ] || continue
    if ! parking park --if-newer "$runs/$key" "$parked/$key"; then
      [ -f "$runs/$key/summary.json" ] && continue  # it ended (and dropped its checkpoints) meanwhile
      return 1
    fi
  done < <(each_run)
  [ -d "$parked" ] && find "$parked" -type d -empty -delete
  return 0
}

case "${1:-start}" in
  start)
    [ -x "$python" ] || { echo "no $python: run 'bash scripts/study.sh' once (it makes the environment)" >&2; exit 1; }
    if [ -f "$BEYOND_DIR/pid" ] && kill -0 "$(cat "$BEYOND_DIR/pid")" 2>/dev/null; then
      echo "already running (pid $(cat "$BEYOND_DIR/pid"))"; exit 0
    fi
    mkdir -p "$runs"
    rm -rf "$BEYOND_DIR"/inductor-cache.*  # of sweeps that were stopped
    restore_published || exit 1
    unpark_runs
    (sweep >>"$BEYOND_DIR/log.txt" 2>&1; echo "$(date -u +%FT%TZ) sweep ended: $?" >>"$BEYOND_DIR/log.txt") &
    echo $! >"$BEYOND_DIR/pid"
    echo "started: runs in $runs (each task pinned to runs/ENV/commit), log $BEYOND_DIR/log.txt"
    ;;
  status)
    while read -r env method seed; do
      key=$env/$method/seed$seed state=queued
      [ -f "$parked/$key/parked.json" ] && state="parked at $(parking steps "$parked/$key") steps"
      # a run writes progress.json every few seconds: an old one is a run that was stopped
      [ -f "$runs/$key/progress.json" ] && state="$(python3 -c "import json,sys,time; p=json.load(open(sys.argv[1]))
e, r, now = p.get('last_eval'), p.get('steps_per_s'), time.time() - p.get('time', 0) < 300
print(('running: ' if now else 'stopped (resumes from its newest checkpoint) at ')
      + f\"{p['timesteps']:,} of {p['total']:,} env steps\" + ('' if e is None else f', last eval {e:.1f}')
      + (f', {r:.0f} steps/s' if r and now else ''))" "$runs/$key/progress.json")"
      [ -f "$runs/$key/summary.json" ] && state=done
      echo "$env $method seed$seed: $state"
    done < <(each_run)
    ;;
  measure)
    for env in Pendulum-v1 Reacher-v5; do
      [ -d "$runs/$env" ] && cli "$env" - measure "$runs/$env"
    done
    ;;
  publish)  # the small files of finished runs and a report per task (no models, no absolute paths)
    out=docs/demo/beyond-sac
    # the small files, each task's report.md and the page of both (this repository's package: the
    # reports are scored and laid out as today's, whatever commit the runs are pinned to)
    (cd "$repo" && PYTHONPATH=$repo "$python" -m sb3_ofexi.cli results "$out" --publish "$runs" --out "$out/RESULTS.md" \
      --title "Beyond SAC: TD3 and TQC with and without OFEXi, and CrossQ" \
      --made-by "bash scripts/beyond_sac.sh           # start / resume: 3 seeds a method, one run at a time, niced" \
      --made-by "bash scripts/beyond_sac.sh publish   # small files, each task's report.md, this page") || exit 1
    for env in Pendulum-v1 Reacher-v5; do
      # a task's commit is published as soon as it starts: its parked runs resume from that commit only
      [ -f "$runs/$env/commit" ] && mkdir -p "$repo/$out/$env" && cp "$runs/$env/commit" "$repo/$out/$env/commit"
      for f in "$runs/$env"/*.commit; do if [ -f "$f" ]; then cp "$f" "$repo/$out/$env/"; fi; done
    done
    for hp in "$runs/Reacher-v5"/hyperparams*/; do  # what the Reacher runs read (hyperparams-METHOD: a re-made one)
      [ -d "$hp" ] || continue
      hp=${hp%/}
      mkdir -p "$repo/$out/Reacher-v5/${hp##*/}"
      cp "$hp"/{td3,tqc,crossq,td3_ofexi_prune_b,tqc_ofexi_prune_b,td3_ofexi_ofe,sac_ofexi_prune_b}.yml "$repo/$out/Reacher-v5/${hp##*/}/"
    done
    park_runs || { echo "could not park the unfinished runs" >&2; exit 1; }
    echo "published into $repo/$out; unfinished runs parked in $parked"
    ;;
  *)
    echo "usage: bash scripts/beyond_sac.sh [start|status|measure|publish]" >&2
    exit 2
    ;;
esac
