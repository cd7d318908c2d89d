"""A replay buffer that lives on the model's device (the default of SAC_OFEXi on CUDA).

SB3's :class:`~stable_baselines3.common.buffers.ReplayBuffer` keeps numpy arrays: every
minibatch is gathered in numpy and copied to the device, field by field. Here every
transition is one row of a single tensor on the device (``[obs, next_obs, action, reward,
done, timeout]``): ``add`` makes one host-to-device copy per env step, ``sample`` draws the
indices on the device (torch's generator of that device, seeded by SB3's ``set_random_seed``)
and gathers the minibatch with one indexing op; the fields are views of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecNormalize


class DeviceReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` API (``add``, ``sample``, ``size``, ``reset``, pickling for
    ``save_replay_buffer`` / ``load_replay_buffer``) with the data on ``device``.

    Accepts flat float ``Box`` observations and ``Box`` actions (what SAC_OFEXi trains on);
    ``optimize_memory_usage`` is not offered (one row already holds both observations).
    The ``observations``, ``actions``, ... attributes are tensor views of shape
    ``(buffer_size, n_envs, dim)``, as SB3's arrays are.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError(
                "DeviceReplayBuffer does not offer optimize_memory_usage=True: accepted: False "
                "(or SB3's ReplayBuffer via replay_buffer_class)"
            )
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"DeviceReplayBuffer needs a flat Box observation space, got {observation_space!r}")
        if not isinstance(action_space, spaces.Box):
            raise ValueError(f"DeviceReplayBuffer needs a Box action space, got {action_space!r}")
        # BaseBuffer's bookkeeping only: ReplayBuffer.__init__ would allocate numpy arrays
        super(ReplayBuffer, self).__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.buffer_size = max(buffer_size // n_envs, 1)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        obs_dim, act_dim = int(np.prod(self.obs_shape)), self.action_dim
        # column ranges of each field inside one row
        widths = {
            "observations": obs_dim,
            "next_observations": obs_dim,
            "actions": act_dim,
            "rewards": 1,
            "dones": 1,
            "timeouts": 1,
        }
        self._columns: dict[str, slice] = {}
        start = 0
        for name, width in widths.items():
            self._columns[name] = slice(start, start + width)
            start += width
        self.storage = th.zeros((self.buffer_size, self.n_envs, start), dtype=th.float32, device=self.device)

    def _field(self, name: str) -> th.Tensor:
        view = self.storage[..., self._columns[name]]
        return view.squeeze(-1) if name in ("rewards", "dones", "timeouts") else view

    observations = property(lambda self: self._field("observations"))
    next_observations = property(lambda self: self._field("next_observations"))
    actions = property(lambda self: self._field("actions"))
    rewards = property(lambda self: self._field("rewards"))
    dones = property(lambda self: self._field("dones"))
    timeouts = property(lambda self: self._field("timeouts"))

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        n = self.n_envs
        timeouts = [info.get("TimeLimit.truncated", False) for info in infos]
        if not self.handle_timeout_termination:
            timeouts = [False] * n
        row = np.concatenate(
            [
                np.asarray(obs, dtype=np.float32).reshape(n, -1),
                np.asarray(next_obs, dtype=np.float32).reshape(n, -1),
                np.asarray(action, dtype=np.float32).reshape(n, -1),
                np.asarray(reward, dtype=np.float32).reshape(n, 1),
                np.asarray(done, dtype=np.float32).reshape(n, 1),
                np.asarray(timeouts, dtype=np.float32).reshape(n, 1),
            ],
            axis=1,
        )
        self.storage[self.pos].copy_(th.from_numpy(row))  # the one host-to-device copy of a step
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        upper = self.buffer_size if self.full else self.pos
        if upper == 0:
            raise ValueError("DeviceReplayBuffer.sample() on an empty buffer: add transitions first")
        batch_inds = th.randint(0, upper, (batch_size,), device=self.device)
        env_inds = th.randint(0, self.n_envs, (batch_size,), device=self.device)
        return self._get_samples(batch_inds, env_inds, env)  # type: ignore[arg-type]

    def _get_samples(  # type: ignore[override]
        self, batch_inds: th.Tensor, env_inds: th.Tensor, env: VecNormalize | None = None
    ) -> ReplayBufferSamples:
        rows = self.storage[batch_inds, env_inds]  # one gather for every field
        col = self._columns
        obs, next_obs = rows[:, col["observations"]], rows[:, col["next_observations"]]
        rewards = rows[:, col["rewards"]]
        if env is not None:  # VecNormalize's statistics live in numpy: the slow path
            obs, next_obs = (
                self._to_device(env.normalize_obs(x.cpu().numpy()))  # type: ignore[arg-type]
                for x in (obs, next_obs)
            )
            rewards = self._to_device(env.normalize_reward(rewards.cpu().numpy()))  # type: ignore[arg-type]
        dones = rows[:, col["dones"]] * (1 - rows[:, col["timeouts"]])
        return ReplayBufferSamples(obs, rows[:, col["actions"]], next_obs, dones, rewards)

    def _to_device(self, array: np.ndarray) -> th.Tensor:
        return th.as_tensor(array, dtype=th.float32, device=self.device)

    @property  # type: ignore[override]
    def device(self) -> th.device:
        return self._device

    @device.setter
    def device(self, value: th.device | str) -> None:
        # SB3's load_replay_buffer assigns the model's device: the data follows it
        self._device = get_device(value)
        if "storage" in self.__dict__:
            self.storage = self.storage.to(self._device)

    # pickled by save_replay_buffer: the data travels on the CPU and comes back to the saved
    # device, or to the CPU where that device is not available (load_replay_buffer then moves
    # it to the model's device)
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["storage"] = self.storage.cpu()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        device = state["_device"]
        if device.type == "cuda" and not th.cuda.is_available():
            device = th.device("cpu")
        state["_device"] = device
        state["storage"] = state["storage"].to(device)
        self.__dict__.update(state)
