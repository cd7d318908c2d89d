"""``load`` that tells a bad file from a bad argument, shared by every algorithm of the package."""

from __future__ import annotations

import io
import pathlib
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
    (env spaces that do not match, bad ``device``...), which keep SB3's own messages."""

    @classmethod
    def load(cls, path: str | pathlib.Path | io.BufferedIOBase, env: Any = None, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        check_model_file(path, cls.__name__)
        return super().load(path, resolve_env(env), *args, **kwargs)  # type: ignore[misc]
