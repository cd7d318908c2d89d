"""``load`` that tells a bad file from a bad argument, shared by every algorithm of the package."""

from __future__ import annotations

import contextlib
import io
import pathlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import gymnasium as gym
from stable_baselines3.common.save_util import load_from_zip_file


def check_model_file(path: str | pathlib.Path | io.BufferedIOBase, algo: str) -> None:
    """Read the saved model once (SB3's reader); a file that cannot be read gives a ValueError
    that says so. Only file problems are reported here: arguments are checked after."""
    position = path.tell() if isinstance(path, io.IOBase) and path.seekable() else None
    try:
        data, _, _ = load_from_zip_file(path, device="cpu", load_data=True)
        if data is None:  # SB3 reads an archive without its "data" entry as empty
            raise ValueError("no 'data' entry")
    except FileNotFoundError:
        raise
    except Exception as error:  # zip, JSON, pickle and torch errors all mean: unreadable file
        raise ValueError(
            f"Could not load a {algo} model from {path!r}: the file is truncated, corrupted or not "
            f"a model saved by {algo}.save() ({type(error).__name__}: {error})"
        ) from error
    finally:
        if position is not None:
            path.seek(position)  # type: ignore[union-attr]


def resolve_env(env: Any) -> Any:
    """An env id (as SB3's constructors accept) becomes the env; anything else is SB3's to check."""
    if isinstance(env, str):
        try:
            return gym.make(env)
        except gym.error.Error as error:
            raise ValueError(
                f"env={env!r}: not a registered Gymnasium id ({error}); accepted: an id such as "
                "'Hopper-v5', a gymnasium.Env or a VecEnv"
            ) from error
    return env


class SafeLoadMixin:
    """SB3's ``load`` with an env id accepted and file problems told apart from everything else
    (env spaces that do not match, bad ``device``...), which keep SB3's own messages. A file that
    loads is read once (SB3's reader); the file is checked only when loading failed."""

    @classmethod
    def load(cls, path: str | pathlib.Path | io.BufferedIOBase, env: Any = None, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        env = resolve_env(env)
        position = path.tell() if isinstance(path, io.IOBase) and path.seekable() else None
        try:
            return super().load(path, env, *args, **kwargs)  # type: ignore[misc]
        except FileNotFoundError:
            raise
        except Exception:
            if position is not None:
                path.seek(position)  # type: ignore[union-attr]
            check_model_file(path, cls.__name__)  # raises if the file is what went wrong
            raise


#: the OFEXi algorithm whose ``_setup_model`` is building a policy now (None: none is)
_BUILDING: ContextVar[str | None] = ContextVar("sb3_ofexi_building", default=None)


@contextlib.contextmanager
def building_policy(algorithm: str) -> Iterator[None]:
    """While ``algorithm`` builds its policy: policies saved by it accept to be built."""
    token = _BUILDING.set(algorithm)
    try:
        yield
    finally:
        _BUILDING.reset(token)


def check_builder(algorithm: str | None, policy: str) -> None:
    """A policy whose ``policy_kwargs`` name the OFEXi algorithm that saved it (``algorithm``) is
    built only by that algorithm: a file opened with another one (stock SB3's ``SAC.load``) gets
    a ValueError that names the right loader, instead of a model that cannot train."""
    if algorithm is not None and _BUILDING.get() != algorithm:
        raise ValueError(
            f"This model is a {algorithm} model (policy {policy}, with OFEXiNet features and possibly "
            f"pruned widths); another algorithm cannot run it. Load it with "
            f"`from sb3_ofexi import {algorithm}; {algorithm}.load(path)`."
        )
