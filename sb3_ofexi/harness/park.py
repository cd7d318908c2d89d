"""Parking a run's checkpoint in a git repository, so that a run can go on on another machine.

A long run (the Hopper study's, many hours) outlives the machine it started on: the folder of
its checkpoints (:mod:`sb3_ofexi.harness.checkpoint`) stays behind when a session's machine is
taken away. ``park`` copies the newest checkpoint into a folder that is committed; ``unpark``
rebuilds the checkpoint from it on the next machine, and the run resumes as from any other.

A checkpoint is mostly its replay buffer, and SB3 pickles the buffer with all of its rows
allocated (1M rows of Hopper: ~200 MB, most of them zeros). A parked checkpoint keeps only the
rows filled so far, in compressed chunks of ``CHUNK_ROWS`` rows. The buffer of an off-policy run
only grows until it is full, so a chunk once complete never changes: each chunk is named by the
hash of its rows, and parking again writes only the chunks whose rows changed (the new ones and
the last, partial one; every chunk of a full buffer, which overwrites its oldest rows). A chunk
leaves out each next observation that is the following row's observation (all but the ends of
episodes), which halves a MuJoCo buffer's bytes. What git keeps in its history for a run is
then the filled buffer once, plus one ``model.zip`` per parking (the weights and optimiser
states: these change everywhere between two parkings).

A parked folder holds ``parked.json`` (what it holds, written last) and the files it names:
``model-STEPS.zip`` (deflated again: SB3 stores its members uncompressed), ``envs-STEPS.pkl``,
``state-STEPS.pkl``, ``replay_buffer-STEPS.stub.pkl`` (the buffer with its row arrays removed)
and ``buffer-NNNN-HASH.npz`` chunks. A file is never rewritten under a name that ``parked.json``
may name: a parking killed at any moment leaves the previous one whole (its extra files are
removed by the next). Unparked, it is the same checkpoint, byte for byte in every array: a run
resumed from it goes on as from the original.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import pathlib
import pickle
import re
import shutil
import zipfile
from typing import Any

import numpy as np

from sb3_ofexi.harness.checkpoint import POINTER, latest_checkpoint

PARKED = "parked.json"
#: rows of the replay buffer in one chunk file (Hopper: ~2.5 MB compressed)
CHUNK_ROWS = 25_000
#: the checkpoint's files that are copied as they are
PLAIN_FILES = ("envs.pkl", "state.pkl")


def _row_arrays(buffer: Any) -> dict[str, np.ndarray]:
    """The buffer's arrays indexed by row (first axis ``buffer_size``), by attribute name;
    the arrays of a dict observation space as ``name/key``."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in vars(buffer).items():
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == buffer.buffer_size:
            arrays[name] = value
        elif (
            isinstance(value, dict)
            and value
            and all(
                isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == buffer.buffer_size for v in value.values()
            )
        ):
            arrays.update({f"{name}/{key}": v for key, v in value.items()})
    return arrays


def _filled_rows(buffer: Any) -> int:
    """Rows holding data: up to ``pos``, and the row at ``pos`` too when the buffer keeps each next
    observation in the following row (``optimize_memory_usage``)."""
    if buffer.full:
        return int(buffer.buffer_size)
    return int(min(buffer.pos + int(bool(getattr(buffer, "optimize_memory_usage", False))), buffer.buffer_size))


def _next_key_pairs(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """``next_observations`` keys (``next_observations/KEY`` of a dict buffer) by the observation
    key whose following row they mostly repeat, where shapes and dtypes agree."""
    pairs = {}
    for key, value in arrays.items():
        name, _, sub = key.partition("/")
        if name == "next_observations":
            obs_key = "observations" + (f"/{sub}" if sub else "")
            if obs_key in arrays and arrays[obs_key].shape == value.shape and arrays[obs_key].dtype == value.dtype:
                pairs[key] = obs_key
    return pairs


def _chunk_arrays(arrays: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    """A chunk's rows as written: each next observation that is the following row's observation
    (all but the ends of episodes, ~97% on Hopper) is left out; ``KEY@differs`` lists the rows
    stored in ``KEY@rows`` (the chunk's last row always, its follower being in the next chunk)."""
    chunk = {key: value[start:stop] for key, value in arrays.items()}
    for next_key, obs_key in _next_key_pairs(arrays).items():
        following, nexts = chunk[obs_key][1:], chunk[next_key]
        width = int(np.prod(nexts.shape[1:]))
        same = (nexts[:-1] == following).reshape(len(following), width).all(axis=1)
        differs = np.flatnonzero(np.append(~same, True))
        chunk[f"{next_key}@differs"], chunk[f"{next_key}@rows"] = differs, nexts[differs]
        del chunk[next_key]
    return chunk


def _read_chunk(data: Any, key: str, obs_key: str | None) -> np.ndarray:
    """One array of a chunk file: stored whole (the first parkings), or rebuilt from the following
    rows' observations and the rows stored apart (:func:`_chunk_arrays`)."""
    if key in data.files or obs_key is None:
        return data[key]
    observations, differs = data[obs_key], data[f"{key}@differs"]
    rebuilt = np.empty_like(observations)
    rebuilt[:-1] = observations[1:]
    rebuilt[differs] = data[f"{key}@rows"]
    return rebuilt


def _digest(arrays: dict[str, np.ndarray], start: int, stop: int) -> str:
    """What a chunk holds, as a name: a chunk is written once, under the hash of its rows."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(arrays[key][start:stop]).tobytes())
    return digest.hexdigest()[:16]


def _deflate_zip(source: pathlib.Path, target: pathlib.Path) -> None:
    """Copy a zip file with every member deflated (same names, same bytes once read)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))


def store_model(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy a finished run's ``model.zip`` into the repository, deflated (what ``measure`` and a
    user load later: SB3 reads either form)."""
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    _deflate_zip(pathlib.Path(source), tmp)
    os.replace(tmp, target)


def _read_checkpoint(run_dir: pathlib.Path) -> tuple[pathlib.Path, dict[str, bytes]]:
    """The newest checkpoint's files, read into memory: a running run may delete the folder as
    soon as it has written a newer one, so a read that loses that race starts again."""
    for _ in range(5):
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"{run_dir} has no checkpoint to park ({POINTER} missing or stale)")
        try:
            names = ("model.zip", "replay_buffer.pkl", *PLAIN_FILES)
            return checkpoint, {name: (checkpoint / name).read_bytes() for name in names}
        except FileNotFoundError:
            continue
    raise RuntimeError(f"{run_dir}: its checkpoints kept changing while being read; try again")


def parked_steps(parked_dir: pathlib.Path) -> int | None:
    """The env steps of the checkpoint parked in ``parked_dir``; ``None`` when there is none."""
    meta = parked_dir / PARKED
    return json.loads(meta.read_text())["num_timesteps"] if meta.exists() else None


def park(run_dir: str | os.PathLike, parked_dir: str | os.PathLike, carry: tuple[str, ...] = ()) -> dict[str, Any]:
    """Copy the newest checkpoint of ``run_dir`` into ``parked_dir`` (see the module's docstring),
    with the files of the run's folder named in ``carry`` (its progress, evaluations, log).

    Complete chunks already parked are kept as they are; files of an earlier parking that the new
    one does not use are removed. Returns the contents of ``parked.json``.
    """
    run_dir, parked_dir = pathlib.Path(run_dir), pathlib.Path(parked_dir)
    _check_carry(carry)
    checkpoint, files = _read_checkpoint(run_dir)
    buffer = pickle.loads(files.pop("replay_buffer.pkl"))
    rows = _filled_rows(buffer)
    arrays = _row_arrays(buffer)
    if not arrays:
        raise ValueError(
            f"{checkpoint}: its replay buffer ({type(buffer).__name__}) keeps no NumPy arrays of buffer_size "
            "rows: accepted: SB3's ReplayBuffer and DictReplayBuffer (a device buffer is parked from a CPU run)"
        )
    parked_dir.mkdir(parents=True, exist_ok=True)
    for leftover in parked_dir.glob("*.tmp"):  # of a parking killed mid-way
        leftover.unlink()

    def write(name: str, data: bytes | None = None, source: pathlib.Path | None = None) -> str:
        tmp = parked_dir / f"{name}.tmp"
        if source is not None:
            _deflate_zip(source, tmp)
        else:
            tmp.write_bytes(data)  # type: ignore[arg-type]
        os.replace(tmp, parked_dir / name)
        return name

    steps = int(checkpoint.name.rsplit("-", 1)[1])
    chunks = []
    for index, start in enumerate(range(0, rows, CHUNK_ROWS)):
        stop = min(start + CHUNK_ROWS, rows)
        # named by what it holds: a complete chunk of a growing buffer is written once; rows that a
        # full buffer overwrote, or another trajectory's, make another name
        name = f"buffer-{index:04d}-{_digest(arrays, start, stop)}.npz"
        if not (parked_dir / name).exists():
            data = io.BytesIO()
            np.savez_compressed(data, **_chunk_arrays(arrays, start, stop))
            write(name, data.getvalue())
        chunks.append({"file": name, "rows": stop - start})

    stub = copy.copy(buffer)
    for key in arrays:
        name, _, sub = key.partition("/")
        if sub:
            setattr(stub, name, {k: None for k in getattr(buffer, name)})
        else:
            setattr(stub, name, None)
    raw = parked_dir / "model.raw.tmp"
    raw.write_bytes(files.pop("model.zip"))
    names = {
        "buffer_stub": write(f"replay_buffer-{steps}.stub.pkl", pickle.dumps(stub, protocol=pickle.HIGHEST_PROTOCOL)),
        "model": write(f"model-{steps}.zip", source=raw),
        **{name: write(name.replace(".pkl", f"-{steps}.pkl"), data) for name, data in files.items()},
    }
    raw.unlink()
    meta = {
        "checkpoint": checkpoint.name,
        "num_timesteps": steps,
        "rows": rows,
        "chunk_rows": CHUNK_ROWS,
        "chunks": chunks,
        "files": names,
        "arrays": {key: {"shape": list(value.shape), "dtype": value.dtype.str} for key, value in arrays.items()},
    }
    # before parked.json, under their own names: a parking killed after this leaves the previous
    # parking whole with carried files newer than it (they only ever run ahead of a checkpoint)
    _carry(run_dir, parked_dir, carry)
    write(PARKED, (json.dumps(meta, indent=1) + "\n").encode())
    keep = {PARKED, *names.values(), *(chunk["file"] for chunk in chunks), *carry}
    for path in parked_dir.iterdir():
        if path.name not in keep and path.is_file():
            path.unlink()
    return meta


def unpark(parked_dir: str | os.PathLike, run_dir: str | os.PathLike, carry: tuple[str, ...] = ()) -> pathlib.Path:
    """Rebuild the checkpoint parked in ``parked_dir`` inside ``run_dir`` and point the run at it
    (``checkpoint.json``), so that the run resumes from it; the files named in ``carry`` are copied
    back first. Returns the checkpoint's folder."""
    parked_dir, run_dir = pathlib.Path(parked_dir), pathlib.Path(run_dir)
    _check_carry(carry)
    meta_path = parked_dir / PARKED
    if not meta_path.exists():
        raise FileNotFoundError(f"{parked_dir} holds no parked checkpoint ({PARKED} missing)")
    meta = json.loads(meta_path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    # first: an unpark that fails later still leaves the run its files (the study's pinned commit),
    # and the run's pointer, written last, never names a checkpoint without them
    _carry(parked_dir, run_dir, carry)
    files = meta["files"]
    buffer = pickle.loads((parked_dir / files["buffer_stub"]).read_bytes())
    arrays = {key: np.zeros(spec["shape"], dtype=np.dtype(spec["dtype"])) for key, spec in meta["arrays"].items()}
    pairs = _next_key_pairs(arrays)
    start = 0
    for chunk in meta["chunks"]:
        try:
            data = np.load(parked_dir / chunk["file"], allow_pickle=True)  # HER's infos are objects
        except (OSError, ValueError, EOFError, pickle.UnpicklingError) as error:
            raise ValueError(f"{parked_dir / chunk['file']}: a damaged or missing buffer chunk ({error})") from error
        with data:
            for key, array in arrays.items():
                part = _read_chunk(data, key, pairs.get(key))
                if len(part) != chunk["rows"]:
                    raise ValueError(
                        f"{parked_dir / chunk['file']}: {key} has {len(part)} rows, {chunk['rows']} expected"
                    )
                array[start : start + chunk["rows"]] = part
        start += chunk["rows"]
    if start != meta["rows"]:
        raise ValueError(f"{parked_dir}: its chunks hold {start} rows of the buffer, {meta['rows']} expected")
    for key, array in arrays.items():
        name, _, sub = key.partition("/")
        if sub:
            getattr(buffer, name)[sub] = array
        else:
            setattr(buffer, name, array)

    tmp = run_dir / f"{meta['checkpoint']}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    with zipfile.ZipFile(parked_dir / files["model"]) as src, zipfile.ZipFile(tmp / "model.zip", "w") as dst:
        for info in src.infolist():  # stored again, as SB3 writes it
            dst.writestr(info.filename, src.read(info.filename))
    with open(tmp / "replay_buffer.pkl", "wb") as handle:
        pickle.dump(buffer, handle, protocol=pickle.HIGHEST_PROTOCOL)
    for name in PLAIN_FILES:
        shutil.copyfile(parked_dir / files[name], tmp / name)
    final = run_dir / meta["checkpoint"]
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer_tmp = run_dir / f"{POINTER}.tmp"
    pointer_tmp.write_text(json.dumps({"dir": final.name, "num_timesteps": meta["num_timesteps"]}))
    os.replace(pointer_tmp, run_dir / POINTER)
    for other in run_dir.glob("checkpoint-*"):
        if other != final and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
    return final


def checkpoint_steps(path: str | os.PathLike) -> int | None:
    """The env steps of the checkpoint parked in ``path``, or else of the newest checkpoint of the
    run folder ``path``; ``None`` when it holds neither."""
    path = pathlib.Path(path)
    steps = parked_steps(path)
    if steps is None and (path / POINTER).exists() and latest_checkpoint(path) is not None:
        steps = int(json.loads((path / POINTER).read_text())["num_timesteps"])
    return steps


#: the parked folder's own files: a carried file must not take one of their names
OWN_FILES = re.compile(r"^(model|envs|state|replay_buffer|buffer)-.*|.*\.tmp$")


def _check_carry(names: tuple[str, ...]) -> None:
    for name in names:
        if not name or pathlib.Path(name).name != name or name in (PARKED, POINTER) or OWN_FILES.match(name):
            raise ValueError(
                f"carry={name!r}: accepted: names of files in the run's folder (no path; not {PARKED}, "
                f"{POINTER}, a .tmp file or a parked file's name such as model-STEPS.zip)"
            )


def _carry(source: pathlib.Path, target: pathlib.Path, names: tuple[str, ...]) -> None:
    """Copy the named files of a run's folder (progress, evaluations, logs) that exist; each is
    replaced whole, never half-written."""
    for name in names:
        if (source / name).is_file():
            tmp = target / f"{name}.tmp"
            shutil.copyfile(source / name, tmp)
            os.replace(tmp, target / name)


def _ahead(source: int | None, target: int | None) -> bool:
    """Whether a checkpoint of ``source`` env steps replaces one of ``target`` (``None``: none)."""
    return source is not None and (target is None or source > target)


def park_if_newer(
    run_dir: str | os.PathLike, parked_dir: str | os.PathLike, carry: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """:func:`park` when ``run_dir``'s newest checkpoint has more env steps than the one parked in
    ``parked_dir`` (or none is parked), with the files named in ``carry``; ``None`` when it has not."""
    _check_carry(carry)
    if not _ahead(checkpoint_steps(run_dir), parked_steps(pathlib.Path(parked_dir))):
        return None
    return park(run_dir, parked_dir, carry)


def unpark_if_newer(
    parked_dir: str | os.PathLike, run_dir: str | os.PathLike, carry: tuple[str, ...] = ()
) -> pathlib.Path | None:
    """:func:`unpark` when the checkpoint parked in ``parked_dir`` has more env steps than
    ``run_dir``'s newest (or it has none), with the files named in ``carry``; ``None`` when not."""
    _check_carry(carry)
    if not _ahead(parked_steps(pathlib.Path(parked_dir)), checkpoint_steps(run_dir)):
        return None
    return unpark(parked_dir, run_dir, carry)


def main(argv: list[str] | None = None) -> int:
    """``python -m sb3_ofexi.harness.park``: ``park RUN_DIR PARKED_DIR``, ``unpark PARKED_DIR RUN_DIR``
    (both with ``--if-newer`` and ``--carry FILE,...``), ``steps DIR``, ``store-model MODEL_ZIP TARGET_ZIP``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m sb3_ofexi.harness.park",
        description="Park a run's checkpoint in a git repository, or unpark it.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    for verb, source, target in (("park", "run_dir", "parked_dir"), ("unpark", "parked_dir", "run_dir")):
        sub = verbs.add_parser(verb, help=f"{source.upper()} -> {target.upper()}")
        sub.add_argument(source)
        sub.add_argument(target)
        sub.add_argument("--if-newer", action="store_true", help="only when the source has more env steps")
        sub.add_argument("--carry", default="", help="comma-separated files of the run's folder to copy along")
    steps = verbs.add_parser("steps", help="the env steps of a run's newest checkpoint or of a parked one")
    steps.add_argument("dir")
    store = verbs.add_parser("store-model", help="a finished run's model.zip, deflated")
    store.add_argument("model_zip")
    store.add_argument("target_zip")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"{parser.prog} {args.verb}: error: {error}", file=sys.stderr)
        return 1


def _run(args: Any) -> int:
    if args.verb in ("park", "unpark"):
        carry = tuple(name for name in args.carry.split(",") if name)
        if args.verb == "park":
            meta = (park_if_newer if args.if_newer else park)(args.run_dir, args.parked_dir, carry)
            if meta:
                print(f"parked {meta['checkpoint']} ({meta['rows']} buffer rows) in {args.parked_dir}")
            elif checkpoint_steps(args.run_dir) is None:
                print(f"{args.run_dir}: no checkpoint yet; nothing parked")
            else:
                print(f"{args.parked_dir}: holds {args.run_dir}'s newest checkpoint or a newer one; kept")
        else:
            if parked_steps(pathlib.Path(args.parked_dir)) is None:
                raise FileNotFoundError(f"{args.parked_dir} holds no parked checkpoint ({PARKED} missing)")
            final = (unpark_if_newer if args.if_newer else unpark)(args.parked_dir, args.run_dir, carry)
            print(
                f"unparked into {final}"
                if final
                else f"{args.run_dir}: has {args.parked_dir}'s checkpoint or a newer one; nothing unparked"
            )
    elif args.verb == "steps":
        found = checkpoint_steps(args.dir)
        print("" if found is None else found)
    else:
        store_model(args.model_zip, args.target_zip)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
