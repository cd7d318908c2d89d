"""What an OFEXi algorithm refuses, and how it says so: spaces, policy arguments, and NaN/inf from
the environment (a ValueError that names the problem and what is accepted)."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise

#: entries of a dict observation that phi_o can read once flattened
FLAT_ENTRY_SPACES = (spaces.Box, spaces.MultiBinary)


def check_spaces(observation_space: spaces.Space, action_space: spaces.Space, algo: str = "SAC_OFEXi") -> None:
    """An OFEXi algorithm (``algo``) needs a flat observation (phi_o is a DenseNet over a vector): a 1-D Box, or a
    Dict of Box / MultiBinary entries (flattened and concatenated in the Dict's key order, as
    SB3's CombinedExtractor does for flat entries); and a Box action space."""
    if not isinstance(action_space, spaces.Box):
        raise ValueError(
            f"{algo} needs a continuous action space: got {action_space!r}; accepted: gymnasium.spaces.Box"
        )
    if not (np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
        raise ValueError(
            f"{algo} squashes its actions into the action space's bounds: got {action_space!r}; accepted: a Box "
            "with finite low and high (rescale an unbounded action space with a gymnasium wrapper)"
        )
    if isinstance(observation_space, spaces.Dict):
        for key, entry in observation_space.spaces.items():
            image = isinstance(entry, spaces.Box) and len(entry.shape) == 3
            if not isinstance(entry, FLAT_ENTRY_SPACES) or image:
                raise ValueError(
                    f"{algo} reads dict observations whose entries are flat: entry {key!r} is {entry!r}; "
                    "accepted: Box (1-D, or any shape that is not an image) and MultiBinary entries"
                )
        return
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(
            f"{algo} needs a flat observation vector: got {observation_space!r}; accepted: a 1-D "
            "gymnasium.spaces.Box or a Dict of Box / MultiBinary entries (wrap image observations, e.g. "
            "with a feature-extracting wrapper or gymnasium's FlattenObservation)"
        )


def check_finite(name: str, value: np.ndarray | dict[str, np.ndarray], step: int, algo: str = "SAC_OFEXi") -> None:
    """Raise on NaN/inf coming from the environment, while the data is still in numpy."""
    if isinstance(value, dict):  # dict observations: each entry
        for key, entry in value.items():
            check_finite(f"{name} entry {key!r}", entry, step, algo)
        return
    value = np.asarray(value)
    if value.dtype.kind in "fc" and not np.isfinite(value).all():
        bad = np.argwhere(~np.isfinite(value))
        kinds = "NaN" if np.isnan(value).any() else "inf"
        if np.isnan(value).any() and np.isinf(value).any():
            kinds = "NaN and inf"
        raise ValueError(
            f"The environment returned {kinds} in the {name} at env step {step} "
            f"(index [env, entry...] of the first bad values: {bad[:5].tolist()}); "
            f"{algo} refuses it before it reaches the networks. Check the environment or its wrappers."
        )


class FiniteDataMixin:
    """Refuse NaN/inf from the environment before it reaches the networks (an off-policy
    algorithm's ``_sample_action`` and ``_store_transition``, as SB3 names them)."""

    num_timesteps: int
    _last_obs: Any

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        check_finite("observation", self._last_obs, self.num_timesteps, type(self).__name__)  # type: ignore[arg-type]
        return super()._sample_action(learning_starts, action_noise, n_envs)  # type: ignore[misc]

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        algo = type(self).__name__
        check_finite("observation", new_obs, self.num_timesteps, algo)  # type: ignore[arg-type]
        check_finite("reward", reward, self.num_timesteps, algo)
        for i, info in enumerate(infos):
            if dones[i] and info.get("terminal_observation") is not None:
                check_finite("terminal observation", info["terminal_observation"], self.num_timesteps, algo)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)  # type: ignore[misc]


#: policy_kwargs of SB3's policies (SAC, TD3, TQC) that the OFEXi algorithms refuse, and why
REFUSED_POLICY_KWARGS = {
    "features_extractor_class": "OFEXiNet's phi_o is the feature extractor: it reads the flattened observation and "
    "f_pred predicts the next one, so a second, unpruned extractor in front would change what OFENet learns "
    "(preprocess observations with a gymnasium wrapper instead)",
    "features_extractor_kwargs": "see features_extractor_class",
    "share_features_extractor": "OFEXiNet is always shared by the actor and the critics (by design)",
    "use_sde": "it is the algorithm's argument: pass use_sde=True to SAC_OFEXi or TQC_OFEXi, as to SB3's SAC "
    "(TD3, and so TD3_OFEXi, has no gSDE)",
}
#: policy aliases SB3's algorithms know that the OFEXi algorithms do not, and why
REFUSED_POLICIES = {
    "CnnPolicy": "image observations: phi_o is a DenseNet over a flat vector (flatten, or extract features "
    "with a wrapper, first)",
}


def check_policy_kwargs(
    policy: Any, policy_kwargs: dict[str, Any], aliases: dict[str, type], base: type, algo: str = "SAC_OFEXi"
) -> None:
    """A ValueError naming a policy or policy_kwargs key the OFEXi algorithm ``algo`` does not take,
    why, and what it accepts (instead of a TypeError from inside SB3's constructor)."""
    saved_by = policy_kwargs.get("ofexi_algorithm")
    if saved_by is not None and saved_by != algo:  # a file of another OFEXi algorithm, opened with this one
        raise ValueError(
            f"This model is a {saved_by} model; {algo} cannot run it. Load it with "
            f"`from sb3_ofexi import {saved_by}; {saved_by}.load(path)`."
        )
    if isinstance(policy, str):
        if policy in REFUSED_POLICIES:
            raise ValueError(
                f"policy={policy!r} is not supported by {algo}: {REFUSED_POLICIES[policy]}; accepted: {sorted(aliases)}"
            )
        if policy not in aliases:
            raise ValueError(f"policy={policy!r}: accepted: {sorted(aliases)} or a {base.__name__} subclass")
        policy_class = aliases[policy]
    elif isinstance(policy, type) and issubclass(policy, base):
        policy_class = policy
    elif isinstance(policy, type) and hasattr(policy, "xi_layers"):  # what load() passes for another's file
        raise ValueError(
            f"policy={policy.__name__} is the policy of another OFEXi algorithm: {algo} cannot run it. Load a "
            "saved model with the algorithm that saved it (SAC_OFEXi, TD3_OFEXi or TQC_OFEXi; it is named in "
            "the file's policy_kwargs['ofexi_algorithm'])"
        )
    else:
        raise ValueError(f"policy={policy!r}: accepted: {sorted(aliases)} or a {base.__name__} subclass")
    accepted = [
        name
        for name in inspect.signature(policy_class).parameters
        if name not in ("self", "observation_space", "action_space", "lr_schedule", "use_sde", "ofexi_algorithm")
    ]
    for key in policy_kwargs:
        if key in accepted:
            continue
        why = REFUSED_POLICY_KWARGS.get(key, f"not an argument of {policy_class.__name__}")
        raise ValueError(
            f"policy_kwargs[{key!r}] is not supported by {algo}: {why}. Accepted keys: {', '.join(accepted)}"
        )
    check_net_arch(policy_kwargs.get("net_arch"), algo)
    check_int("policy_kwargs['n_critics']", policy_kwargs.get("n_critics", 1), 1)


def check_net_arch(net_arch: Any, algo: str) -> None:
    """``None``, a list of layer widths (actor and critics alike), or a dict with both ``pi`` and ``qf``
    lists (as SB3's off-policy policies read it; ``qf`` may be one list per critic, as pruned models
    are saved); else a ValueError saying so. A width of 0 is a layer pruned empty."""
    if net_arch is None:
        return
    accepted = "a list of ints (actor and critics) or dict(pi=[...], qf=[...]); qf may be one list per critic"
    if isinstance(net_arch, dict):
        missing = [key for key in ("pi", "qf") if key not in net_arch]
        if missing:
            raise ValueError(
                f"policy_kwargs['net_arch'] has no {' or '.join(map(repr, missing))} key: accepted: {accepted}"
            )
        qf = net_arch["qf"]
        per_critic = isinstance(qf, (list, tuple)) and len(qf) > 0 and all(isinstance(a, (list, tuple)) for a in qf)
        lists = [net_arch["pi"], *(qf if per_critic else [qf])]
    else:
        lists = [net_arch]
    ok = all(
        isinstance(arch, (list, tuple)) and all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in arch)
        for arch in lists
    )
    if not ok:
        raise ValueError(f"policy_kwargs['net_arch']={net_arch!r} for {algo}: accepted: {accepted}")


def check_fraction(name: str, value: float, low: float = 0.0, high: float = 1.0, high_open: bool = True) -> None:
    """A finite number in ``[low, high)`` (``[low, high]`` unless ``high_open``), or a ValueError saying so."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name}={value!r}: accepted: a number in [{low}, {high}{bracket}")


def hand_to_policy(policy_kwargs: dict[str, Any] | None, algo: str, **values: Any) -> dict[str, Any]:
    """``policy_kwargs`` with the algorithm's policy-level arguments added; a ValueError when the
    user also set one of them in ``policy_kwargs`` to another value."""
    policy_kwargs = dict(policy_kwargs or {})
    for key, value in values.items():
        if key in policy_kwargs and policy_kwargs[key] != value:
            raise ValueError(
                f"policy_kwargs[{key!r}]={policy_kwargs[key]!r} disagrees with {key}={value!r}: "
                f"pass it as {algo}'s argument only"
            )
        policy_kwargs[key] = value
    return policy_kwargs


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """An int in ``[low, high]`` (no bool), or a ValueError saying so."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low
    ok = ok and (high is None or value <= high)
    if not ok:
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}={value!r}: accepted: an int {bound}")
