"""Compile a C policy written by :mod:`sb3_ofexi.common.c_export` and call it from Python.

The exporter's check, the tests and the latency benchmark all build the generated ``.c`` the same
way: the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) makes a shared library in a
temporary folder, which ctypes loads. The flags are strict on purpose (``-Wall -Wextra -Werror
-std=c99``): the generated code promises to be warning-free C99.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

import numpy as np

#: flags of every build: ISO C99, no contraction of a * b + c into an FMA (clang contracts by
#: default, GCC outside ISO mode), so the sums are rounded as written; optimised; no warning tolerated
CFLAGS = ("-std=c99", "-ffp-contract=off", "-O2", "-Wall", "-Wextra", "-Werror")
#: compilers tried, in order, when ``$CC`` is not set
COMPILERS = ("cc", "gcc", "clang")


def find_compiler() -> list[str] | None:
    """The C compiler's command (``$CC`` split as a shell would, e.g. ``ccache gcc``), or ``None``."""
    env = os.environ.get("CC", "").strip()
    if env:
        command = shlex.split(env)
        return command if shutil.which(command[0]) else None
    for name in COMPILERS:
        found = shutil.which(name)
        if found:
            return [found]
    return None


def need_compiler() -> list[str]:
    """The C compiler's command, or a ``FileNotFoundError`` that says what was looked for."""
    compiler = find_compiler()
    if compiler is None:
        where = f"$CC={os.environ['CC']!r} is not on PATH" if os.environ.get("CC", "").strip() else "none on PATH"
        raise FileNotFoundError(
            f"No C compiler found ({where}); accepted: $CC or one of {', '.join(COMPILERS)} "
            "(install gcc or clang, or pass check=False to export without compiling)"
        )
    return compiler


def compile_shared(
    sources: Sequence[str | pathlib.Path], out: str | pathlib.Path, flags: Sequence[str] = CFLAGS
) -> pathlib.Path:
    """Build ``sources`` into the shared library ``out`` (``-shared -fPIC``, linked with ``-lm``).

    :raises FileNotFoundError: no C compiler
    :raises RuntimeError: the compiler failed (its messages are in the error)
    """
    compiler = need_compiler()
    out = pathlib.Path(out)
    command = [*compiler, *flags, "-shared", "-fPIC", *map(str, sources), "-o", str(out), "-lm"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"The C compiler failed ({shlex.join(command)}):\n{result.stderr.strip()}")
    return out


def header_dims(header: str | pathlib.Path, name: str) -> tuple[int, int]:
    """``(<name>_OBS_DIM, <name>_ACT_DIM)`` read from a generated header."""
    text = pathlib.Path(header).read_text()
    dims = []
    for macro in ("OBS_DIM", "ACT_DIM"):
        match = re.search(rf"^#define {re.escape(name)}_{macro} (\d+)\s*$", text, re.MULTILINE)
        if match is None:
            raise ValueError(f"{header}: no '#define {name}_{macro}': accepted: a header written by export_policy")
        dims.append(int(match.group(1)))
    return dims[0], dims[1]


class CPolicy:
    """A compiled C policy: ``policy(obs)`` calls ``<name>_act`` on each row of ``obs``.

    :param source: the generated ``<name>.c`` (its header ``<name>.h`` beside it)
    :param name: the C name (default: the file's stem)
    :param extra_sources: more C files linked into the same library (e.g. a timing loop)
    :param flags: compiler flags (default :data:`CFLAGS`)
    """

    def __init__(
        self,
        source: str | pathlib.Path,
        name: str | None = None,
        extra_sources: Sequence[str | pathlib.Path] = (),
        flags: Sequence[str] = CFLAGS,
    ) -> None:
        source = pathlib.Path(source)
        self.name = name or source.stem
        self.obs_dim, self.act_dim = header_dims(source.with_suffix(".h"), self.name)
        # the library lives as long as this object (some systems cannot unlink a loaded library)
        self._tmp = tempfile.TemporaryDirectory(prefix="sb3_ofexi_c_")
        try:
            path = compile_shared([source, *extra_sources], pathlib.Path(self._tmp.name) / f"lib{self.name}.so", flags)
            self.library = ctypes.CDLL(str(path))
        except BaseException:
            self._tmp.cleanup()
            raise
        self._act = getattr(self.library, f"{self.name}_act")
        self._act.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
        self._act.restype = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch ``(n, obs_dim)`` (or one observation ``(obs_dim,)``), float32."""
        obs = np.ascontiguousarray(obs, dtype=np.float32)
        single = obs.ndim == 1
        batch = obs.reshape(-1, obs.shape[-1])
        if batch.shape[1] != self.obs_dim:
            raise ValueError(f"{self.name}_act: observations of {batch.shape[1]} floats: accepted: {self.obs_dim}")
        actions = np.empty((len(batch), self.act_dim), np.float32)
        out_ptr = ctypes.POINTER(ctypes.c_float)
        for row, action in zip(batch, actions):
            self._act(row.ctypes.data_as(out_ptr), action.ctypes.data_as(out_ptr))
        return actions[0] if single else actions

    def close(self) -> None:
        self._tmp.cleanup()


def build_c_policy(
    path: str | pathlib.Path, name: str | None = None, extra_sources: Sequence[str | pathlib.Path] = ()
) -> CPolicy:
    """Compile the C policy at ``path`` (its ``.c``, its ``.h`` or their folder) and load it.

    :param name: the C name; default: the file's stem, or the one ``.c`` file in a folder
    """
    path = pathlib.Path(path)
    if path.is_dir():
        if name is None:
            found = sorted(path.glob("*.c"))
            if len(found) != 1:
                raise ValueError(f"{path}: {len(found)} .c files: accepted: a folder with one, or name=")
            name = found[0].stem
        path = path / f"{name}.c"
    path = path.with_suffix(".c")
    if not path.exists():
        raise FileNotFoundError(f"No such C file: {path}")
    return CPolicy(path, name, extra_sources)
