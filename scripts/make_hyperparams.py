"""Write the rl-zoo3 YAML files of the TD3 / TQC / CrossQ baselines and of TD3_OFEXi / TQC_OFEXi.

    python scripts/make_hyperparams.py           # (re)writes the seven files in hyperparams/
    python scripts/make_hyperparams.py --check   # exits 1 if a file on disk differs from what it would write

Sources, read when it runs (nothing else; the output is deterministic for given inputs):

- rl-zoo3's own ``hyperparams/{td3,tqc,crossq}.yml`` of the installed rl-zoo3: for a task ``X-v5`` its
  entry for ``X-v5``, else ``X-v4``, else the Bullet env of the same task (as ``hyperparams/sac.yml``
  does), else that file's MuJoCo defaults (the ``&mujoco-defaults`` anchor); other ids (Pendulum-v1)
  by their own name. rl-zoo3's keys and values are kept as they are.
- ``hyperparams/sac.yml``: the task list (its entries, in its order) and, for the paper's four tasks,
  the budget (``n_timesteps``), so that every method of a comparison trains equally long there; the
  other tasks keep rl-zoo3's budget.
- ``hyperparams/sac_ofexi_{ofe,prune_b}.yml``: the OFEXi keys of each task's SAC_OFEXi entry (the keys
  it has beyond the ``sac.yml`` entry: preset, ofe_layers, xi_start, xi_round; in the small entries the
  sizes and the tuned keys), with their comments, and its ``policy_kwargs`` net_arch in the small
  entries. rl-zoo3's ``net_arch`` is dropped in the OFEXi files (the preset sets the sizes); its other
  ``policy_kwargs`` stay.
- ``RETUNED`` below: an OFEXi file's own keys for a task where the evidence showed the SAC_OFEXi entry's
  values do not carry over (td3_ofexi_prune_b Reacher-v5: nu_actor / nu_critic, docs/CALIBRATION.md).

Every file written is checked: it loads with ``yaml.safe_load``, every entry has ``n_timesteps`` and
``policy``, and every key is a constructor argument of the algorithm (``inspect.signature``), an
OFEXi keyword argument (SAC_OFEXi's beyond SAC's) in the OFEXi files, or one of rl-zoo3's own keys.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib.metadata
import importlib.util
import inspect
import pathlib
import re
import sys
from typing import Any

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
HYPERPARAMS = ROOT / "hyperparams"
GENERATOR = "scripts/make_hyperparams.py"
COMMAND = "python -m sb3_ofexi.zoo train --algo ALGO --env ENV -conf THIS_FILE"

#: the paper's tasks: their budget is sac.yml's (the paper's) in every file
PAPER_TASKS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5")
#: the Bullet env of a MuJoCo task, rl-zoo3's closest id where it has no MuJoCo entry (as sac.yml uses
#: it). InvertedPendulumSwingupBulletEnv-v0 is not InvertedPendulum's: it swings the pole up first.
BULLET = {
    "HalfCheetah": "HalfCheetahBulletEnv-v0",
    "Ant": "AntBulletEnv-v0",
    "Hopper": "HopperBulletEnv-v0",
    "Walker2d": "Walker2DBulletEnv-v0",
    "Humanoid": "HumanoidBulletEnv-v0",
    "Reacher": "ReacherBulletEnv-v0",
    "InvertedDoublePendulum": "InvertedDoublePendulumBulletEnv-v0",
}
#: rl-zoo3's own keys (its ExperimentManager consumes them; the algorithm never sees them)
ZOO_KEYS = frozenset(
    {
        "n_timesteps",
        "policy",
        "noise_type",
        "noise_std",
        "normalize",
        "n_envs",
        "env_wrapper",
        "frame_stack",
        "callback",
        "vec_env_wrapper",
        "policy_kwargs",
        "env_kwargs",
        "monitor_kwargs",
    }
)
#: keys written as ``!!float 1e-3`` (as the existing files write learning rates and nu's)
SMALL_FLOAT_KEYS = frozenset({"learning_rate", "nu_ofe", "nu_actor", "nu_critic", "lambda_ofe", "lambda_rl"})

#: stock files: stem -> (rl-zoo3 algo, name, class)
STOCK = {
    "td3": ("td3", "TD3", "stable_baselines3.TD3"),
    "tqc": ("tqc", "TQC", "sb3_contrib.TQC"),
    "crossq": ("crossq", "CrossQ", "sb3_contrib.CrossQ"),
}
#: OFEXi files: stem -> (algo, class name, stock stem, SAC_OFEXi file stem, preset)
OFEXI = {
    "td3_ofexi_ofe": ("td3_ofexi", "TD3_OFEXi", "td3", "sac_ofexi_ofe", "ofe"),
    "td3_ofexi_prune_b": ("td3_ofexi", "TD3_OFEXi", "td3", "sac_ofexi_prune_b", "prune-b"),
    "tqc_ofexi_ofe": ("tqc_ofexi", "TQC_OFEXi", "tqc", "sac_ofexi_ofe", "ofe"),
    "tqc_ofexi_prune_b": ("tqc_ofexi", "TQC_OFEXi", "tqc", "sac_ofexi_prune_b", "prune-b"),
}
#: an OFEXi file's own keys for a task, over the SAC_OFEXi entry's (stem, task) -> (why, keys): where the
#: evidence showed that entry's values do not carry over (docs/CALIBRATION.md)
RETUNED: dict[tuple[str, str], tuple[list[str], dict[str, Any]]] = {
    ("td3_ofexi_prune_b", "Reacher-v5"): (
        [
            "# prune-b's nu_actor / nu_critic / 10: Reacher's rewards (-0.07 to -0.3 a step) shrink TD3's losses and",
            "# their theta gradients, not nu * C; at prune-b's values the regulariser's push was 4-5x the task's pull",
            "# on the critics' and actor's first layers (3 seeds) and the critics kept 4-5 of 128 units",
            '# (docs/CALIBRATION.md, "TD3_OFEXi on Reacher-v5"): /10 puts the push at about half that pull.',
        ],
        {"nu_actor": 1e-6, "nu_critic": 5e-5},
    ),
}
PRESET_SIZES = {
    "ofe": "32 units per OFE block, 256x2, no gates",
    "prune-b": "128 units per OFE block, 512x2, gates",
}


# ---------------------------------------------------------------------------------------------- inputs


def zoo_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("rl_zoo3")  # its folder, without importing it (and torch)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("rl_zoo3 is not installed: run this with the project's virtualenv")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "hyperparams"


def zoo_version() -> str:
    return importlib.metadata.version("rl_zoo3")  # = rl_zoo3.__version__ (its version.txt)


class ZooFile:
    """One of rl-zoo3's YAML files: its entries (merge keys resolved) and its MuJoCo defaults."""

    def __init__(self, algo: str) -> None:
        self.algo = algo
        self.name = f"{algo}.yml"
        text = (zoo_dir() / self.name).read_text()
        self.entries: dict[str, dict[str, Any]] = yaml.safe_load(text)
        anchor = re.search(r"^([^\s#][^:]*):\s*&mujoco-defaults\b", text, re.M)
        if anchor is None:
            raise SystemExit(f"rl-zoo3's {self.name} has no &mujoco-defaults anchor: update {GENERATOR}")
        self.defaults_id = anchor.group(1).strip()

    def resolve(self, task: str) -> tuple[str | None, dict[str, Any]]:
        """(rl-zoo3's id the values come from, or None for its MuJoCo defaults; the values)."""
        name, _, version = task.rpartition("-")
        candidates = [task]
        if version == "v5":
            candidates += [f"{name}-v4", BULLET.get(name)]
        for candidate in candidates:
            if candidate and candidate in self.entries:
                return candidate, dict(self.entries[candidate])
        if version != "v5":
            raise SystemExit(f"rl-zoo3's {self.name} has no entry for {task}, and it is not a MuJoCo task")
        return None, dict(self.entries[self.defaults_id])


def load(stem: str) -> tuple[str, dict[str, dict[str, Any]]]:
    text = (HYPERPARAMS / f"{stem}.yml").read_text()
    return text, yaml.safe_load(text)


def entry_comments(text: str) -> dict[str, dict[str, tuple[list[str], str | None]]]:
    """Per entry and key of a YAML file like ours: (the comment lines above the key, its line's comment)."""
    comments: dict[str, dict[str, tuple[list[str], str | None]]] = {}
    current: str | None = None
    pending: list[str] = []
    for line in text.splitlines():
        top = re.match(r"^([^\s#][^:]*):", line)
        if top:
            current, pending = top.group(1).strip(), []
            comments[current] = {}
            continue
        stripped = line.strip()
        if current is None or not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append(stripped)
            continue
        key = re.match(r"^\s+([A-Za-z_]\w*):", line)
        if key:
            trailing = line.split("  # ", 1)[1] if "  # " in line else None
            comments[current][key.group(1)] = (pending, trailing)
            pending = []
    return comments


# ------------------------------------------------------------------------------------------- formatting


def sci(value: float, pad: bool) -> str:
    """The shortest exact scientific form: 2e+06 (pad, as sac.yml's budgets) or 7.3e-4 (learning rates)."""
    for digits in range(17):
        text = f"{value:.{digits}e}"
        if float(text) == value:
            break
    mantissa, exponent = text.split("e")
    if not pad:
        exponent = f"{int(exponent):d}"
    return f"{mantissa}e{exponent}"


def fmt(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if key == "n_timesteps":
            return f"!!float {sci(value, pad=True)}"
        if key in SMALL_FLOAT_KEYS and value != 0:
            return f"!!float {sci(value, pad=False)}"
        return repr(value)
    if isinstance(value, str):
        if key == "policy_kwargs":
            return f'"{value}"'
        return "'" + value.replace("'", "''") + "'"
    raise SystemExit(f"{key}: {value!r}: a value this generator cannot write; extend fmt()")


def split_kwargs(text: str) -> list[tuple[str, str]]:
    """``"dict(a=1, b=[2, 3])"`` -> [("a", "1"), ("b", "[2, 3]")], the values' text as written."""
    source = " ".join(text.split())
    call = ast.parse(source, mode="eval").body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "dict"):
        raise SystemExit(f"policy_kwargs {text!r}: not a dict(...) call")
    if call.args or any(kw.arg is None for kw in call.keywords):
        raise SystemExit(f"policy_kwargs {text!r}: only keyword arguments are handled")
    return [(kw.arg, ast.get_source_segment(source, kw.value) or "") for kw in call.keywords]  # type: ignore[misc]


def join_kwargs(items: list[tuple[str, str]]) -> str:
    return "dict(" + ", ".join(f"{key}={value}" for key, value in items) + ")"


class Entry:
    """One task's entry: lines of (key, value, the comment lines above it, its line's comment)."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.lines: list[tuple[str, Any, list[str], str | None]] = []

    def add(self, key: str, value: Any, comment: str | None = None, above: list[str] | None = None) -> None:
        if any(key == k for k, *_ in self.lines):
            raise SystemExit(f"{self.task}: {key} twice")
        self.lines.append((key, value, list(above or []), comment))

    def values(self) -> dict[str, Any]:
        return {key: value for key, value, *_ in self.lines}

    def text(self) -> str:
        out = [f"{self.task}:"]
        for key, value, above, comment in self.lines:
            out += [f"  {line}" for line in above]
            out.append(f"  {key}: {fmt(key, value)}" + (f"  # {comment}" if comment else ""))
        return "\n".join(out)


def write_file(header: list[str], entries: list[Entry]) -> str:
    return "\n".join(f"# {line}" for line in header) + "\n\n" + "\n\n".join(e.text() for e in entries) + "\n"


# --------------------------------------------------------------------------------------------- building


def stock_entries(zoo: ZooFile, sac: dict[str, dict[str, Any]], notes: list[str]) -> list[tuple[Entry, str]]:
    """Each task's entry of the stock file, with a short note on where its values come from."""
    out = []
    for task, sac_entry in sac.items():
        source, values = zoo.resolve(task)
        where = f"rl-zoo3 {zoo.name} {source}" if source else f"rl-zoo3's {STOCK[zoo.algo][1]} MuJoCo defaults"
        if source is None:
            comment = f"rl-zoo3's {STOCK[zoo.algo][1]} MuJoCo defaults ({zoo.name} {zoo.defaults_id}; no entry for it)"
        else:
            comment = f"rl-zoo3 {zoo.name} {source}"
        budget = values["n_timesteps"]
        if task in PAPER_TASKS:
            budget = sac_entry["n_timesteps"]
            if float(budget) != float(values["n_timesteps"]):
                comment += f", with sac.yml's budget (the paper's; rl-zoo3: {sci(float(values['n_timesteps']), True)})"
                where += f", sac.yml's budget (rl-zoo3 {sci(float(values['n_timesteps']), True)})"
            else:
                comment += " (its budget is sac.yml's, the paper's)"
        elif float(budget) != float(sac_entry["n_timesteps"]):
            notes.append(
                f"{zoo.algo}.yml {task}: rl-zoo3's budget {budget:,.0f}, sac.yml's {sac_entry['n_timesteps']:,.0f}"
            )
        if values.get("use_sde"):
            notes.append(f"{zoo.algo}.yml {task}: gSDE (use_sde) from {source or 'the defaults'}")
        entry = Entry(task)
        entry.add("n_timesteps", budget, comment)
        entry.add("policy", values.pop("policy"))
        values.pop("n_timesteps")
        for key, value in values.items():
            entry.add(key, value)
        out.append((entry, where))
    return out


def ofexi_entry(
    stem: str,
    stock: Entry,
    task: str,
    sac_entry: dict[str, Any],
    ofe_entry: dict[str, Any],
    comments: dict,
    spec: tuple,
) -> tuple[Entry, str]:
    algo, cls, _, ofe_stem, preset = spec
    why, retuned = RETUNED.get((stem, task), ([], {}))
    if ofe_entry.get("preset") != preset:
        raise SystemExit(f"{ofe_stem}.yml {task}: preset {ofe_entry.get('preset')!r}, expected {preset!r}")
    # the OFEXi keys: what the SAC_OFEXi entry has beyond the stock SAC entry, in its order
    ofe_keys = [key for key in ofe_entry if key not in sac_entry or key == "policy_kwargs"]
    small = "policy_kwargs" in ofe_keys
    if small:  # the sizes: the SAC_OFEXi entry's net_arch (a small entry)
        if "policy_kwargs" not in sac_entry:
            raise SystemExit(f"{ofe_stem}.yml {task}: policy_kwargs where sac.yml has none")
    zoo_kwargs: list[tuple[str, str]] = []
    entry = Entry(task)
    for key, value, above, comment in stock.lines:
        if key == "policy_kwargs":
            zoo_kwargs = [(k, v) for k, v in split_kwargs(value) if k != "net_arch"]
            if zoo_kwargs and not small:
                entry.add(key, join_kwargs(zoo_kwargs), "rl-zoo3's, without its net_arch (the preset sets the sizes)")
            continue
        if key in ofe_keys:
            raise SystemExit(f"{task}: rl-zoo3's {key} and the SAC_OFEXi entry's {key}")
        entry.add(key, value, comment, above)
    first = True
    for key in ofe_keys:
        above, comment = comments.get(key, ([], None))
        if first:
            above = [
                f"# OFEXi keys of the SAC_OFEXi entry ({ofe_stem}.yml {task}), "
                + (f"except {' / '.join(retuned)}" if retuned else f"not re-tuned for {cls}"),
                *above,
            ]
            first = False
        value = ofe_entry[key]
        if key == "policy_kwargs":
            own = split_kwargs(value)
            merged = [(k, v) for k, v in zoo_kwargs if k not in dict(own)] + own
            value = join_kwargs(merged)
            if zoo_kwargs:
                comment = f"rl-zoo3's {', '.join(k for k, _ in zoo_kwargs)} and the SAC_OFEXi entry's sizes"
        entry.add(key, value, comment, above)
    for i, (key, value) in enumerate(retuned.items()):
        if key in ofe_keys:
            raise SystemExit(f"{stem}.yml {task}: {key} both in the SAC_OFEXi entry and in RETUNED")
        entry.add(key, value, None, why if i == 0 else None)
    keep_xi_start_after_learning_starts(entry, cls)
    where = "rl-zoo3 as in the stock file + " + ("SAC_OFEXi small entry" if small else "SAC_OFEXi entry")
    if retuned:
        where += f" + its own {', '.join(retuned)}"
    return entry, where


def keep_xi_start_after_learning_starts(entry: Entry, cls_name: str) -> None:
    """A fraction xi_start that falls before rl-zoo3's learning_starts (TD3's Pendulum: 0.2 of 20k is
    4k, learning starts at 10k) becomes the env step at that fraction of the gradient steps, as
    SAC_OFEXi's entry has it (xi_start keeps its place among the gradient steps)."""
    values = entry.values()
    if values.get("preset") in ("ofe", "ofe-big") or values.get("use_xi") is False:
        return
    import sb3_ofexi

    cls = getattr(sb3_ofexi, cls_name)
    defaults = accepted_defaults(cls)
    start = values.get("xi_start", defaults["xi_start"])
    starts = int(values.get("learning_starts", defaults["learning_starts"]))
    n_timesteps = int(float(values["n_timesteps"]))
    if not isinstance(start, float) or start * n_timesteps > starts:
        return
    moved = starts + round(start * (n_timesteps - starts))
    comment = f"{start} of the gradient steps: {start} of the {n_timesteps:,} env steps falls before learning_starts"
    entry.lines = [line for line in entry.lines if line[0] != "xi_start"]
    entry.add("xi_start", moved, comment)


def stock_header(stem: str, zoo: ZooFile, version: str) -> list[str]:
    algo, name, cls = STOCK[stem]
    return [
        f"{name} baseline: stock {cls}, rl-zoo3's settings (algo: {algo})",
        f"rl-zoo3 hyperparameters: {COMMAND}",
        f"Values: rl-zoo3 {version}'s hyperparams/{zoo.name}, kept as they are, for every Gymnasium MuJoCo v5",
        "task and sac.yml's small tasks: the task's own entry, else its v4 entry, else the closest id (the Bullet",
        f"env), else rl-zoo3's {name} MuJoCo defaults; named per entry. Budgets: sac.yml's (the paper's) for",
        "HalfCheetah, Hopper, Walker2d and Ant, so the methods of a comparison train equally long; rl-zoo3's",
        f"for the others. Generated by {GENERATOR} (from rl-zoo3's file and sac.yml): edit and rerun it.",
    ]


def ofexi_header(stem: str, version: str) -> list[str]:
    algo, cls, stock, ofe_stem, preset = OFEXI[stem]
    return [
        f"{cls}, preset {preset} (algo: {algo})",
        f"rl-zoo3 hyperparameters: {COMMAND}",
        f"Values: rl-zoo3 {version}'s settings as in {stock}.yml (the same entries and budgets), plus the OFEXi",
        f"keys of the task's SAC_OFEXi entry in {ofe_stem}.yml (preset, ofe_layers, xi_start, xi_round; in",
        "the small entries its sizes and tuned keys); named per entry. rl-zoo3's policy_kwargs net_arch is",
        f"dropped: the preset sets the sizes ({preset}: {PRESET_SIZES[preset]}); the small entries take",
        "the SAC_OFEXi entry's net_arch, as the sac_ofexi files do. rl-zoo3's other policy_kwargs stay.",
        f"Generated by {GENERATOR} (from rl-zoo3's file, sac.yml and {ofe_stem}.yml): edit and rerun it.",
    ]


def build(notes: list[str], table: list[tuple[str, str, str, Any]]) -> dict[str, str]:
    version = zoo_version()
    _, sac = load("sac")
    files: dict[str, str] = {}
    stock: dict[str, list[Entry]] = {}
    for stem in STOCK:
        zoo = ZooFile(STOCK[stem][0])
        built = stock_entries(zoo, sac, notes)
        stock[stem] = [entry for entry, _ in built]
        files[stem] = write_file(stock_header(stem, zoo, version), stock[stem])
        table += [(stem, e.task, where, e.values()["n_timesteps"]) for e, where in built]
    for stem, spec in OFEXI.items():
        ofe_text, ofe = load(spec[3])
        comments = entry_comments(ofe_text)
        entries = []
        for entry in stock[spec[2]]:
            if entry.task not in ofe:
                raise SystemExit(f"{spec[3]}.yml has no entry for {entry.task} (sac.yml has)")
            built, where = ofexi_entry(
                stem, entry, entry.task, sac[entry.task], ofe[entry.task], comments.get(entry.task, {}), spec
            )
            entries.append(built)
            table.append((stem, entry.task, where, built.values()["n_timesteps"]))
        files[stem] = write_file(ofexi_header(stem, version), entries)
    return files


# ------------------------------------------------------------------------------------------------ checks


def accepted_by(cls: type) -> set[str]:
    """A class's constructor arguments; through ``**kwargs``, those of the next ``__init__`` in its MRO too."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = inspect.signature(klass.__init__).parameters
        names |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names - {"env", "_init_setup_model"}


def check(files: dict[str, str], notes: list[str]) -> list[str]:
    """Errors in the files' text: YAML, required keys, keys no algorithm accepts, budgets, presets;
    what is merely surprising goes to ``notes``."""
    import torch.nn as nn
    from sb3_contrib import TQC, CrossQ
    from stable_baselines3 import SAC, TD3

    import sb3_ofexi
    from sb3_ofexi import SAC_OFEXi
    from sb3_ofexi.common.presets import get_preset

    ofexi_keys = accepted_by(SAC_OFEXi) - accepted_by(SAC)  # the OFEXi keyword arguments
    classes: dict[str, tuple[type, set[str], str]] = {
        stem: (cls, set(), cls.__name__) for stem, cls in (("td3", TD3), ("tqc", TQC), ("crossq", CrossQ))
    }
    for stem, (_, cls_name, stock, _, _) in OFEXI.items():
        own = getattr(sb3_ofexi, cls_name, None)
        base = classes[stock][0]
        if own is None:  # not written yet: the stock class's arguments and SAC_OFEXi's OFEXi ones
            classes[stem] = (base, ofexi_keys, f"{base.__name__} + SAC_OFEXi's OFEXi keys ({cls_name} not found)")
        else:
            classes[stem] = (own, set(), f"sb3_ofexi.{cls_name}")
            missing = sorted(ofexi_keys - accepted_by(own))
            if missing:
                notes.append(f"{cls_name} lacks SAC_OFEXi's OFEXi keyword arguments {missing}")
    errors = []
    _, sac = load("sac")
    parsed = {stem: yaml.safe_load(text) for stem, text in files.items()}
    for stem, entries in parsed.items():
        cls, extra, checked = classes[stem]
        accepted = accepted_by(cls) | extra | ZOO_KEYS
        notes.append(f"{stem}.yml: keys checked against {checked}, and rl-zoo3's own keys")
        if list(entries) != list(sac):
            errors.append(f"{stem}.yml: tasks {list(entries)} != sac.yml's {list(sac)}")
        for task, entry in entries.items():
            where = f"{stem}.yml {task}"
            for key in ("n_timesteps", "policy"):
                if key not in entry:
                    errors.append(f"{where}: no {key}")
            if not entry.get("n_timesteps", 0) > 0:
                errors.append(f"{where}: n_timesteps {entry.get('n_timesteps')!r}")
            unknown = sorted(set(entry) - accepted)
            if unknown:
                errors.append(f"{where}: {unknown} not accepted by {checked} (nor by rl-zoo3)")
            if task in PAPER_TASKS and entry.get("n_timesteps") != sac[task]["n_timesteps"]:
                errors.append(f"{where}: budget {entry.get('n_timesteps')} != sac.yml's {sac[task]['n_timesteps']}")
            kwargs = entry.get("policy_kwargs", {})
            if isinstance(kwargs, str):
                kwargs = eval(kwargs, {"dict": dict, "nn": nn})  # as rl-zoo3
            if not isinstance(kwargs, dict):
                errors.append(f"{where}: policy_kwargs {kwargs!r} is not a dict")
            if stem not in OFEXI:
                continue
            preset = OFEXI[stem][4]
            if entry.get("preset") != preset:
                errors.append(f"{where}: preset {entry.get('preset')!r} != {preset!r}")
            if entry.get("n_timesteps") != parsed[OFEXI[stem][2]][task]["n_timesteps"]:
                errors.append(f"{where}: budget differs from {OFEXI[stem][2]}.yml's")
            if isinstance(kwargs, dict) and "net_arch" in kwargs and "ofe_units" not in entry:
                errors.append(f"{where}: rl-zoo3's net_arch in a MuJoCo entry (the preset sets the sizes)")
            # thetas that start learning before the first gradient step (docs/CALIBRATION.md, "The RL side")
            if get_preset(preset).get("use_xi"):
                start = entry.get("xi_start", inspect.signature(SAC_OFEXi.__init__).parameters["xi_start"].default)
                steps = start * entry["n_timesteps"] if isinstance(start, float) else start
                learning_starts = entry.get("learning_starts", accepted_defaults(cls)["learning_starts"])
                if steps <= learning_starts:
                    notes.append(
                        f"{where}: xi_start {start!r} ({steps:,.0f} env steps) is not after learning_starts "
                        f"{learning_starts:,}: the thetas learn from the first gradient step on"
                    )
    if any("noise_type" in entry for stem in ("td3", *OFEXI) for entry in parsed[stem].values()):
        notes.append(
            "td3 files: noise_type / noise_std are rl-zoo3 keys (it builds action_noise from them); "
            "a loader other than rl-zoo3 must convert them"
        )
    return errors


def accepted_defaults(cls: type) -> dict[str, Any]:
    """The defaults of a class's constructor arguments, the nearest ``__init__`` of its MRO first."""
    defaults: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass is not object:
            for name, param in inspect.signature(klass.__init__).parameters.items():
                if param.default is not param.empty:
                    defaults.setdefault(name, param.default)
    return defaults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ; write nothing")
    args = parser.parse_args(argv)
    notes: list[str] = []
    table: list[tuple[str, str, str, Any]] = []
    files = build(notes, table)
    errors = check(files, notes)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if args.check:
        stale = []
        for stem, text in files.items():
            path = HYPERPARAMS / f"{stem}.yml"
            old = path.read_text() if path.exists() else ""
            if old != text:
                stale.append(path.name)
                diff = difflib.unified_diff(
                    old.splitlines(),
                    text.splitlines(),
                    f"{path.name} (on disk)",
                    f"{path.name} (generated)",
                    lineterm="",
                )
                print("\n".join(list(diff)[:40]), file=sys.stderr)
        if stale:
            print(f"stale: {', '.join(stale)}: run python {GENERATOR}", file=sys.stderr)
        return 1 if stale or errors else 0
    if errors:
        return 1
    for stem, text in files.items():
        (HYPERPARAMS / f"{stem}.yml").write_text(text)
        print(f"wrote hyperparams/{stem}.yml ({len(yaml.safe_load(text))} entries)")
    width = max(len(task) for _, task, _, _ in table)
    for stem, task, where, budget in table:
        print(f"  {stem:18} {task:{width}} {float(budget):>10,.0f}  {where}")
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
