#!/usr/bin/env bash
# The CUDA checks and figures (the compiled step's CUDA half), on a lent GPU machine.
#
# Run from the repository root on a CUDA machine whose Python has torch but not SB3 & co.:
# their wheels travel in .whl/ (python 3.12, see docs/BENCHMARKS.md "CUDA"). Never in CI.
#   STAGE=tests  the CUDA tests (surgery on the device, models moved between devices, the
#                step as a CUDA graph against the eager step)
#   STAGE=quick  STAGE=tests, then `python -m benchmarks.run --quick --device cuda`
#   STAGE=full   `python -m benchmarks.run --device cuda` (full mode)
#   STAGE=suite  the whole test suite on the CUDA machine (device "auto" picks CUDA wherever a
#                test does not name the CPU), then P3 (a whole Prune-B run / OFE-Big's) at
#                P3_STEPS env steps (default 8000), 2 repetitions, the step graphed ("auto")
# Logs and JSON land in $OUT (default runs/device).
set -u
OUT=${OUT:-runs/device}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
# no rendering (MuJoCo loads no GL); JAX (P7) must not take the GPU memory torch needs
export PYTHONUNBUFFERED=1 MUJOCO_GL=disable XLA_PYTHON_CLIENT_PREALLOCATE=false
STAGE=${STAGE:-quick}
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    nproc
    python3 -c "import platform, torch, stable_baselines3, gymnasium, mujoco; print(platform.python_version(), torch.__version__,
torch.cuda.get_device_name(), 'sb3', stable_baselines3.__version__, 'gymnasium', gymnasium.__version__, 'mujoco', mujoco.__version__)"
} 2>&1 | tee "$OUT/machine.txt"

status=0
if [ "$STAGE" = tests ] || [ "$STAGE" = quick ]; then
    # every test that runs on CUDA (the rest of these files runs too: they are quick)
    python3 -m pytest -q -rs -p no:cacheprovider -n 6 tests/test_cuda_graph.py tests/test_buffers.py \
        tests/test_pruning.py tests/test_reliability.py tests/test_compiled_step.py tests/test_beyond_sac.py 2>&1 | tee "$OUT/tests.log"
    status=${PIPESTATUS[0]}
fi
if [ "$STAGE" = quick ]; then
    python3 -m benchmarks.run --quick --device cuda --json "$OUT/bench_quick_cuda.json" 2>&1 | tee "$OUT/bench_quick_cuda.log"
fi
if [ "$STAGE" = full ]; then
    python3 -m benchmarks.run --device cuda --json "$OUT/bench_full_cuda.json" 2>&1 | tee "$OUT/bench_full_cuda.log"
fi
if [ "$STAGE" = suite ]; then
    timeout 300 python3 -m pytest -q -rs -p no:cacheprovider -n 12 tests --deselect tests/test_install.py 2>&1 \
        | grep -v "^DEBUG" | tee "$OUT/suite.log"
    status=${PIPESTATUS[0]}
    timeout 260 python3 -c "from benchmarks import whole_run; r = whole_run.measure(False, 'cuda', timesteps=${P3_STEPS:-8000});
r.pop('model'); print(r)" 2>&1 | tee "$OUT/p3_cuda.log"
fi
exit "$status"
