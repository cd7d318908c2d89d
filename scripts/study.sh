#!/usr/bin/env bash
# The long Hopper-v5 study (docs/RESULTS.md, "Hopper-v5 at 300k"): one command starts or resumes it.
#
#   bash scripts/study.sh            # start / resume in the background (JOBS runs at a time, niced, 1 core each)
#   bash scripts/study.sh status     # runs done, running (env steps reached), queued; exit 0 once complete
#   bash scripts/study.sh publish    # finished runs' small files and models + docs/study/PROGRESS.md into the repository,
#                                    # unfinished runs' newest checkpoints parked in study/parked/ (commit both);
#                                    # rebuilds docs/RESULTS.md (the study leads it)
#   bash scripts/study.sh stop       # stop the workers and their runs (each resumes from its last checkpoint)
#
# Runs live in $STUDY_DIR (default ~/sb3-ofexi-study, outside the work tree): runs/GROUP/METHOD/seedN/ with the
# checkpoints written every 10 minutes, so a stopped run loses at most its last 10 minutes.
# A session's machine is not kept for the next one, so `publish` also parks the newest checkpoint of each
# unfinished run in the repository (study/parked/GROUP/METHOD/seedN/: the model, the filled rows of the
# replay buffer in chunks, the envs' and callbacks' state; sb3_ofexi.harness.park), and `start` on a machine
# without that run (or with an older checkpoint of it) rebuilds the checkpoint from there: committed, the
# parked state carries a run from session to session. study/requirements.txt pins the venv's packages
# (written when the venv is first made), so that every machine resumes a run with the same libraries.
# Each run is pinned to one commit: the first time it starts it records the repository's HEAD (study_commit);
# it runs, and every later sitting resumes it, from a clone of that commit in $STUDY_DIR/src/COMMIT, so editing
# the package never changes a running run. New runs take the HEAD of the day they start (committed code only).
# The Python environment ($STUDY_DIR/venv) holds the dependencies; the package comes from the run's clone.
# Timings in the summaries are taken at the end of each run, beside the other; when a group is complete,
# re-time it in one quiet sitting before comparing costs: sb3-ofexi measure docs/study/GROUP (the models that
# publish stores there; the runs finished before it stored them, sac seeds 0-1 and ofe seed 0, are timed on a
# model rebuilt from their settings, which has their sizes: nothing of them was pruned), then publish again.
set -u
repo=${SB3_OFEXI_STUDY_REPO:-$(cd "$(dirname "$0")/.." && pwd)}
STUDY_DIR=${STUDY_DIR:-$HOME/sb3-ofexi-study}
JOBS=${JOBS:-2}
NICE=${NICE:-10}
TORCH=${TORCH:-torch==2.13.0}
EVAL_FREQ=10000     # the paper's cadence
EVAL_EPISODES=10
runs=$STUDY_DIR/runs
parked=$repo/study/parked
lock=$repo/study/requirements.txt
SMALL_FILES="study_commit progress.json evaluations.npz log.txt"

# GROUP ENV METHOD SEED STEPS [KEY=VALUE ...]: seed-major, in the order the issue gives; one line a run.
QUEUE="
Hopper-v5 Hopper-v5 sac 0 300000
Hopper-v5 Hopper-v5 ofe 0 300000
Hopper-v5 Hopper-v5 prune-b 0 300000
Hopper-v5 Hopper-v5 sac 1 300000
Hopper-v5 Hopper-v5 ofe 1 300000
Hopper-v5 Hopper-v5 prune-b 1 300000
Hopper-v5 Hopper-v5 sac 2 300000
Hopper-v5 Hopper-v5 ofe 2 300000
Hopper-v5 Hopper-v5 prune-b 2 300000
Hopper-v5-nu_sb3 Hopper-v5 prune-b 0 300000 nu_rl_reference=sb3
Hopper-v5 Hopper-v5 polyprune 0 300000
Hopper-v5 Hopper-v5 polyprune 1 300000
Hopper-v5 Hopper-v5 polyprune 2 300000
Hopper-v5 Hopper-v5 eaudesac 0 300000
Hopper-v5 Hopper-v5 eaudesac 1 300000
Hopper-v5 Hopper-v5 eaudesac 2 300000
Hopper-v5-1M Hopper-v5 ofe 0 1000000
Hopper-v5-1M Hopper-v5 prune-b 0 1000000
"

queue() { grep -v '^[[:space:]]*$' <<<"$QUEUE"; }

finished() {  # GROUP METHOD SEED: finished here, or published from an earlier machine (docs/study)
  [ -f "$runs/$1/$2/seed$3/summary.json" ] || [ -f "$repo/docs/study/$1/$2/seed$3/summary.json" ]
}

source_of() {  # the clone of commit $1, made once
  local commit=$1 src=$STUDY_DIR/src/$1
  mkdir -p "$STUDY_DIR/src"
  # one worker clones while any other that wants the same commit waits: two runs pinned to one
  # commit start together after a restart, and two clones into one folder break each other
  (
    flock 8
    if [ ! -f "$src/.ready" ]; then
      rm -rf "$src"
      git clone -q --no-checkout "$repo" "$src" && git -C "$src" checkout -q "$commit" && touch "$src/.ready"
    fi
  ) 8>"$STUDY_DIR/src/.$commit.lock" || { echo "cannot check out $commit from $repo" >&2; return 1; }
  echo "$src"
}

make_venv() {  # the packages of study/requirements.txt when it exists; else the newest, then written there
  local venv=$STUDY_DIR/venv
  [ -f "$venv/.ready" ] && return 0
  echo "$(date -u +%FT%TZ) creating $venv (one time: a few minutes)"
  rm -rf "$venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q "$TORCH" || return 1
  if [ -f "$lock" ]; then
    "$venv/bin/pip" install -q -r "$lock" || return 1
  else
    "$venv/bin/pip" install -q "$1" && "$venv/bin/pip" uninstall -q -y sb3_ofexi || return 1
    mkdir -p "$(dirname "$lock")"
    { echo "# the study's packages (bash scripts/study.sh writes this once; every machine installs it)"
      "$venv/bin/pip" freeze --exclude-editable | grep -v -i -E '^(sb3[-_]ofexi|pip|setuptools|wheel)([= @]|$)'; } >"$lock"
  fi
  touch "$venv/.ready"
}

parking() {  # park|unpark|steps ARGS...: the repository's sb3_ofexi.harness.park; runs carry their small files
  local carry=()
  case $1 in park | unpark) carry=(--carry "${SMALL_FILES// /,}") ;; esac
  PYTHONPATH=$repo "$STUDY_DIR/venv/bin/python" -m sb3_ofexi.harness.park "$@" "${carry[@]}"
}

unpark_runs() {  # every unfinished run parked in the repository with more steps than this machine has
  [ -d "$parked" ] || return 0
  while read -r group env method seed steps extra; do
    local key=$group/$method/seed$seed
    finished "$group" "$method" "$seed" && continue
    [ -f "$parked/$key/parked.json" ] || continue
    parking unpark --if-newer "$parked/$key" "$runs/$key" \
      || echo "!!! could not unpark $key: it starts from its own checkpoint, or from step 0" >&2
  done < <(queue)
  return 0
}

park_runs() {  # the newest checkpoint of every unfinished run, when newer than what is parked; finished: removed
  while read -r group env method seed steps extra; do
    local key=$group/$method/seed$seed
    if finished "$group" "$method" "$seed"; then rm -rf "${parked:?}/$key"; continue; fi
    [ -d "$runs/$key" ] || continue
    if ! parking park --if-newer "$runs/$key" "$parked/$key"; then
      finished "$group" "$method" "$seed" && continue  # it ended (and dropped its checkpoints) meanwhile
      return 1
    fi
  done < <(queue)
  find "$parked" -type d -empty -delete 2>/dev/null
  return 0
}

run_one() {  # GROUP ENV METHOD SEED STEPS [KEY=VALUE ...]; the caller holds the run's lock
  local group=$1 env=$2 method=$3 seed=$4 steps=$5
  shift 5
  local dir=$runs/$group/$method/seed$seed commit src sets=()
  mkdir -p "$dir"
  rm -f "$dir/failed.json"  # retried: running again (the pinned harness of older runs does not remove it)
  [ -f "$dir/study_commit" ] || git -C "$repo" rev-parse HEAD >"$dir/study_commit"
  commit=$(cat "$dir/study_commit")
  src=$(source_of "$commit") || return 1
  for kv in "$@"; do sets+=(--set "$kv"); done
  echo "=== $(date -u +%FT%TZ) $group $method seed $seed ($steps steps) at ${commit:0:7}" | tee -a "$dir/log.txt"
  # torch.compile's cache, one per sitting: a run killed while gcc writes a kernel leaves a truncated .so
  # behind, and a shared cache would hand it to every later sitting on this machine ("file too short")
  local cache code
  cache=$(mktemp -d "$STUDY_DIR/inductor-cache.XXXXXX")
  TORCHINDUCTOR_CACHE_DIR=$cache OMP_NUM_THREADS=1 PYTHONPATH=$src nice -n "$NICE" "$STUDY_DIR/venv/bin/python" \
    -m sb3_ofexi.cli train --env "$env" --method "$method" --seed "$seed" --timesteps "$steps" \
    --eval-freq $EVAL_FREQ --eval-episodes $EVAL_EPISODES --out "$runs/$group" --no-progress "${sets[@]}" \
    >>"$dir/log.txt" 2>&1
  code=$?
  rm -rf "$cache"
  return $code
}

worker() {  # takes the first run that is neither finished nor held by another worker, until none is left
  local failed=" "
  while true; do
    local picked=""
    while read -r group env method seed steps extra; do
      local dir=$runs/$group/$method/seed$seed key="$group/$method/seed$seed"
      finished "$group" "$method" "$seed" && continue
      case "$failed" in *" $key "*) continue ;; esac  # failed in this sitting: not again until the next
      mkdir -p "$runs/.locks"
      exec 9>"$runs/.locks/${key//\//_}"
      if ! flock -n 9; then exec 9>&-; continue; fi
      if finished "$group" "$method" "$seed"; then exec 9>&-; continue; fi
      picked=$key
      # shellcheck disable=SC2086  # extra holds KEY=VALUE words
      run_one "$group" "$env" "$method" "$seed" "$steps" $extra || { failed="$failed$key "; echo "!!! $key failed: $dir/log.txt"; }
      exec 9>&-
      break
    done < <(queue)
    [ -n "$picked" ] || break
  done
}

status() {  # one line a run; returns 0 when every run has finished
  local left=0
  printf '| run | commit | status | env steps | score / last eval |\n|---|---|---|---|---|\n'
  while read -r group env method seed steps extra; do
    local dir=$runs/$group/$method/seed$seed commit="" state steps_done="" note=""
    [ -f "$dir/study_commit" ] && commit=$(cut -c1-7 "$dir/study_commit")
    if finished "$group" "$method" "$seed"; then
      local summary=$dir/summary.json
      [ -f "$summary" ] || summary=$repo/docs/study/$group/$method/seed$seed/summary.json
      [ -n "$commit" ] || commit=$(cut -c1-7 "$(dirname "$summary")/study_commit" 2>/dev/null)
      state=done; steps_done=$steps
      note=$(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(f\"final eval {s['final_return']:.1f}, {s['wall_s']/3600:.1f} h\")" "$summary")
    elif [ -f "$dir/progress.json" ] || [ -f "$parked/$group/$method/seed$seed/progress.json" ]; then
      left=$((left + 1))
      [ -f "$dir/progress.json" ] || dir=$parked/$group/$method/seed$seed
      [ -n "$commit" ] || commit=$(cut -c1-7 "$dir/study_commit")
      state=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['status'])" "$dir/progress.json")
      steps_done=$(python3 -c "import json,sys; p=json.load(open(sys.argv[1])); print(p['timesteps'])" "$dir/progress.json")
      note=$(python3 -c "import json,sys; p=json.load(open(sys.argv[1])); e=p.get('last_eval'); r=p.get('steps_per_s')
print(', '.join(([] if e is None else [f'last eval {e:.1f}']) + ([f'{r:.1f} steps/s'] if r else [])))" "$dir/progress.json")
      [ -f "$dir/failed.json" ] && state="failed (resumable)"
      [ "$dir" = "$parked/$group/$method/seed$seed" ] && state="parked (resumes from $(parking steps "$dir"))"
    else
      left=$((left + 1)); state=queued; steps_done=0
    fi
    printf '| %s %s seed %s %s | %s | %s | %s of %s | %s |\n' "$group" "$method" "$seed" "$extra" "$commit" "$state" "$steps_done" "$steps" "$note"
  done < <(queue)
  [ "$left" -eq 0 ] && echo "complete: every run of the queue has finished" || echo "$left run(s) to go"
  [ "$left" -eq 0 ]
}

case "${1:-start}" in
  start)
    mkdir -p "$runs"
    if pgrep -f "$STUDY_DIR/study.sh worker" >/dev/null; then echo "the study is running already: bash scripts/study.sh status"; exit 0; fi
    rm -rf "$STUDY_DIR"/inductor-cache.*  # of sittings that were stopped
    src=$(source_of "$(git -C "$repo" rev-parse HEAD)") || exit 1
    make_venv "$src[harness]" || { echo "could not create $STUDY_DIR/venv" >&2; exit 1; }
    unpark_runs || exit 1
    # the workers run a copy of this script: bash reads a script as it goes, so editing the
    # repository's copy must not change what a running worker executes
    cp "$0" "$STUDY_DIR/study.sh"
    for i in $(seq "$JOBS"); do
      SB3_OFEXI_STUDY_REPO=$repo nohup bash "$STUDY_DIR/study.sh" worker "$i" >>"$STUDY_DIR/worker$i.log" 2>&1 &
    done
    echo "study started: $JOBS workers, runs in $runs; 'bash scripts/study.sh status' tells how far"
    ;;
  worker) worker; exit 0 ;;
  status) status ;;
  stop) pkill -f "$STUDY_DIR/study.sh worker"; pkill -f "sb3_ofexi.cli train .*--out $runs" ; echo stopped ;;
  publish)
    # small files of finished runs (summaries without this machine's paths, evaluation arrays, timings)
    PYTHONPATH=$repo "$STUDY_DIR/venv/bin/python" -c \
      "import sys; from sb3_ofexi.harness.report import publish_runs; publish_runs(*sys.argv[1:])" "$runs" "$repo/docs/study" || exit 1
    for f in "$runs"/*/*/seed*/study_commit; do
      [ -f "$(dirname "$f")/summary.json" ] || continue
      rel=${f#"$runs"/}; mkdir -p "$repo/docs/study/$(dirname "$rel")"; cp "$f" "$repo/docs/study/$rel"
      # the trained agent, deflated: `sb3-ofexi measure docs/study/GROUP` re-times it on a later machine
      model=$(dirname "$f")/model.zip; stored=$repo/docs/study/$(dirname "$rel")/model.zip
      if [ -f "$model" ] && [ ! -f "$stored" ]; then
        PYTHONPATH=$repo "$STUDY_DIR/venv/bin/python" -m sb3_ofexi.harness.park store-model "$model" "$stored" || exit 1
      fi
    done
    park_runs || { echo "could not park the unfinished runs" >&2; exit 1; }
    { echo "# Hopper-v5 study: progress"; echo
      echo "Written by \`bash scripts/study.sh publish\` on $(date -u +%F' '%H:%M) UTC. Resume with \`bash scripts/study.sh\`."
      echo "Finished runs' small files are in docs/study/GROUP/METHOD/seedN/; the newest checkpoint of each"
      echo "unfinished run is parked in study/parked/ and resumes from there on any machine (its"
      echo "checkpoint, up to 10 minutes behind the env steps below: \`sb3-ofexi inspect study/parked/...\`)."; echo
      status; } >"$repo/docs/study/PROGRESS.md"
    (cd "$repo" && PYTHONPATH=$repo "$STUDY_DIR/venv/bin/python" -m sb3_ofexi.cli results docs/results \
      --study docs/study --out docs/RESULTS.md --smooth 5) || exit 1
    echo "published into docs/study/ and docs/RESULTS.md"
    ;;
  *) echo "usage: bash scripts/study.sh [start|status|publish|stop]" >&2; exit 2 ;;
esac
