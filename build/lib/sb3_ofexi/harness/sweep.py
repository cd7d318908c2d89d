"""Sweeps of runs (methods x seeds on one env): resumable, failure-tolerant, local or on Ray, watched live.

* **Resume.** Re-running the same sweep on the same ``--out`` (or ``--resume``) skips finished
  runs (``summary.json``) and continues unfinished ones from their newest checkpoint
  (:mod:`sb3_ofexi.harness.checkpoint`). ``sweep.json`` in ``--out`` records the sweep's settings, so
  ``sb3-ofexi compare --out DIR --resume`` needs nothing else.
* **Failures.** A run that raises writes ``failed.json`` (error and traceback) in its folder;
  the others go on, and the report marks it. A re-run retries it.
* **Backends.** ``local``: runs in ``--jobs`` processes of this machine (default).
  ``ray``: every run is one Ray task with ``num_cpus`` / ``num_gpus``, on a local Ray
  instance or on the cluster at ``--address``. Tasks write into ``--out`` as the workers
  see it: on a cluster that path must be a shared filesystem (NFS, a mounted bucket) for
  checkpoints to survive a worker and for live progress; a task also returns its small
  result files (summary.json, evaluations.npz, failed.json), and the driver writes them
  into its own ``--out`` when they are missing there, so the report is always complete.
* **Progress.** Done / running / failed / total, and per running run its env steps,
  steps/s and last evaluation, read from each run's ``progress.json`` (rich, live on a
  terminal; a line per change otherwise).
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any

from sb3_ofexi.harness.runs import RunSpec, finished_summary, run_safely

BACKENDS = ("local", "ray")
SWEEP_FILE = "sweep.json"
#: small files of a run that the Ray driver copies back (no models, no replay buffers)
RESULT_FILES = ("summary.json", "evaluations.npz", "failed.json")


def save_sweep(out: str | pathlib.Path, settings: dict[str, Any]) -> None:
    path = pathlib.Path(out) / SWEEP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(SWEEP_FILE + ".tmp")
    tmp.write_text(json.dumps(settings, indent=1))
    os.replace(tmp, path)


def load_sweep(out: str | pathlib.Path) -> dict[str, Any]:
    path = pathlib.Path(out) / SWEEP_FILE
    if not path.exists():
        raise ValueError(f"--resume: {out} has no {SWEEP_FILE}: it was not written by 'sb3-ofexi compare'")
    return json.loads(path.read_text())


def _result_files(spec: RunSpec) -> dict[str, bytes]:
    return {name: (spec.run_dir / name).read_bytes() for name in RESULT_FILES if (spec.run_dir / name).exists()}


def _ray_task(spec: RunSpec) -> tuple[dict[str, Any], dict[str, bytes]]:
    result = run_safely(spec)
    return result, _result_files(spec)


class Progress:
    """Live view of a sweep, from the runs' ``progress.json`` files."""

    def __init__(self, specs: list[RunSpec], stream: Any = None) -> None:
        self.specs = specs
        self.status: dict[int, str] = {}
        self.stream = stream or sys.stdout
        self.live: Any = None
        self._last_line = ""
        self._last_print = 0.0

    def __enter__(self) -> Progress:
        if getattr(self.stream, "isatty", lambda: False)():
            from rich.live import Live

            self.live = Live(self.render(), refresh_per_second=1, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(*exc)

    def set(self, index: int, status: str) -> None:
        self.status[index] = status

    def counts(self) -> dict[str, int]:
        values = list(self.status.values())
        return {key: values.count(key) for key in ("done", "running", "failed", "skipped")}

    def headline(self) -> str:
        c = self.counts()
        return (
            f"runs: {c['done'] + c['skipped']} done ({c['skipped']} earlier), {c['running']} running, "
            f"{c['failed']} failed, {len(self.specs)} total"
        )

    def _run_rows(self) -> list[tuple[str, str, str, str, str]]:
        rows = []
        for index, spec in enumerate(self.specs):
            if self.status.get(index) != "running":
                continue
            try:
                progress = json.loads((spec.run_dir / "progress.json").read_text())
            except (OSError, ValueError):
                progress = {}
            steps = progress.get("timesteps")
            last_eval = progress.get("last_eval")
            rows.append(
                (
                    spec.method,
                    str(spec.seed),
                    f"{steps:,} / {spec.timesteps:,}" if steps is not None else f"- / {spec.timesteps:,}",
                    f"{progress['steps_per_s']:.0f}" if "steps_per_s" in progress else "-",
                    f"{last_eval:.1f}" if last_eval is not None else "-",
                )
            )
        return rows

    def render(self) -> Any:
        from rich.table import Table

        table = Table(title=self.headline(), title_justify="left")
        for column in ("method", "seed", "env steps", "steps/s", "last eval"):
            table.add_column(column)
        for row in self._run_rows():
            table.add_row(*row)
        return table

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())
            return
        # where nobody watches live (a log, CI): when the counts change, else every 30 s
        headline = self.headline()
        if headline == self._last_line and time.monotonic() - self._last_print < 30.0:
            return
        rows = "".join(
            f"\n    {m} seed {s}: {st} steps, {r} steps/s, last eval {e}" for m, s, st, r, e in self._run_rows()
        )
        print(headline + rows, file=self.stream, flush=True)
        self._last_line, self._last_print = headline, time.monotonic()


def announce(result: dict[str, Any], stream: Any = None) -> None:
    stream = stream or sys.stdout
    if result.get("status") == "failed":
        where = pathlib.Path(result["out_dir"]) / result["method"] / f"seed{result['seed']}" / "failed.json"
        print(
            f"  FAILED: {result['method']} seed {result['seed']}: {result['error']} (traceback in {where})",
            file=stream,
            flush=True,
        )
        return
    print(
        f"  done: {result['method']:8s} seed {result['seed']}  score {result['score']:9.1f}  "
        f"deploy {result['params']['deploy']:>9,}  train {result['params']['train']:>9,}  "
        f"({result['wall_s']:.0f} s)",
        file=stream,
        flush=True,
    )


def run_sweep(
    specs: list[RunSpec],
    jobs: int = 1,
    backend: str = "local",
    address: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    poll_seconds: float = 1.0,
) -> list[dict[str, Any]]:
    """Run every spec not finished yet; return one result per spec (summary, or failure record)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is invalid: accepted: {', '.join(BACKENDS)}")
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: accepted: an int >= 1")
    results: dict[int, dict[str, Any]] = {}
    todo: list[int] = []
    progress = Progress(specs)
    for index, spec in enumerate(specs):
        summary = finished_summary(spec)  # a ValueError if the folder holds another run
        if summary is not None:
            results[index] = {"status": "done", **summary}
            progress.set(index, "skipped")
        else:
            todo.append(index)
    with progress:
        progress.refresh()
        if backend == "local":
            _run_local(specs, todo, jobs, progress, results, poll_seconds)
        else:
            _run_ray(specs, todo, address, num_cpus, num_gpus, progress, results, poll_seconds)
        progress.refresh()
    return [results[i] for i in range(len(specs))]


def _finish(index: int, result: dict[str, Any], progress: Progress, results: dict[int, dict[str, Any]]) -> None:
    results[index] = result
    progress.set(index, "failed" if result.get("status") == "failed" else "done")
    if progress.live is None:
        announce(result)
    else:
        progress.live.console.print(f"{result['method']} seed {result['seed']}: {result.get('status')}")


def die_with_parent() -> None:
    """Worker initializer: on Linux, a worker is killed when the sweep's process dies (even by
    SIGKILL), so a re-run never races an orphan writing into the same run folder."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except OSError:  # not glibc: workers then outlive a killed sweep, as before
            pass


def _run_local(specs, todo, jobs, progress, results, poll_seconds) -> None:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    for index in todo:
        specs[index].threads = specs[index].threads or threads
    if jobs == 1:  # in this process: simplest to debug, and Ctrl-C leaves a checkpoint behind
        for index in todo:
            progress.set(index, "running")
            progress.refresh()
            _finish(index, run_safely(specs[index]), progress, results)
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=die_with_parent) as pool:
        pending: dict[Future, int] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < jobs:  # submit only what runs now: 'running' means running
                index = queue.pop(0)
                pending[pool.submit(run_safely, specs[index])] = index
                progress.set(index, "running")
            done, _ = wait(pending, timeout=poll_seconds, return_when=FIRST_COMPLETED)
            for future in done:
                _finish(pending.pop(future), future.result(), progress, results)
            progress.refresh()


def _run_ray(specs, todo, address, num_cpus, num_gpus, progress, results, poll_seconds) -> None:
    try:
        import ray
    except ImportError as error:
        raise ValueError('--backend ray needs Ray: pip install "sb3_ofexi[ray]"') from error
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONUNBUFFERED": "1"}},
        )
    try:
        task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_ray_task)
        for index in todo:
            specs[index].threads = specs[index].threads or max(1, int(num_cpus))
            # workers do not share the driver's working directory: give them absolute paths
            specs[index].out_dir = str(pathlib.Path(specs[index].out_dir).resolve())
            if specs[index].hyperparams_dir:
                specs[index].hyperparams_dir = str(pathlib.Path(specs[index].hyperparams_dir).resolve())
        refs = {task.remote(specs[index]): index for index in todo}
        for index in todo:
            progress.set(index, "running")  # queued or running: Ray schedules them
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1, timeout=poll_seconds)
            for ref in done:
                index = refs.pop(ref)
                result, files = ray.get(ref)
                run_dir = specs[index].run_dir
                run_dir.mkdir(parents=True, exist_ok=True)
                for name, payload in files.items():  # the driver's --out gets the small files
                    target = run_dir / name
                    if not target.exists() or target.read_bytes() != payload:
                        target.write_bytes(payload)
                _finish(index, result, progress, results)
            progress.refresh()
    finally:
        if started_here:
            ray.shutdown()
