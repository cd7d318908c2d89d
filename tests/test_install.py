"""The package as a user installs it: a wheel (not editable), used from another directory."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_wheel_ships_the_yaml_files_and_compare_runs_from_any_directory(tmp_path):
    # build the wheel from a copy of the sources (setuptools builds in-tree), with no network:
    # the installed setuptools, no build isolation
    source = tmp_path / "source"
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    for folder in ("sb3_ofexi", "hyperparams"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("sb3_ofexi-*.whl")
    # a fresh virtual environment, the wheel installed into it (not editable); its dependencies come
    # from this environment through a .pth line (no network), without this environment's editable
    # install of the repository (.pth files of a path added that way are not processed)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = pathlib.Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    here = next(p for p in sys.path if p.endswith("site-packages"))
    (site / "deps_of_the_test_environment.pth").write_text(here + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True)
    shipped = sorted(p.name for p in (site / "sb3_ofexi" / "hyperparams").glob("*.yml"))
    assert shipped == sorted(p.name for p in (ROOT / "hyperparams").glob("*.yml"))
    for name in shipped:  # the same files, not stale copies
        assert yaml.safe_load((site / "sb3_ofexi" / "hyperparams" / name).read_text()) == yaml.safe_load(
            (ROOT / "hyperparams" / name).read_text()
        )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "import sb3_ofexi, pathlib; from sb3_ofexi.harness.runs import default_hyperparams_dir as d; "
        f"assert pathlib.Path(sb3_ofexi.__file__).is_relative_to({str(site)!r}), sb3_ofexi.__file__; "
        f"assert d().is_relative_to({str(site)!r}), d(); "
        "from sb3_ofexi.harness.zoo import resolve_conf; print(resolve_conf(['-conf', 'sac_ofexi_prune_b'])[1])"
    )
    out = subprocess.run(
        [str(python), "-c", code], env=env, cwd=elsewhere, check=True, capture_output=True, text=True
    ).stdout
    assert out.strip().startswith(str(site)) and out.strip().endswith("sac_ofexi_prune_b.yml")
    # the installed command, from another directory
    result = subprocess.run(
        [
            str(venv / "bin" / "sb3-ofexi"),
            "compare",
            "--env",
            "Pendulum-v1",
            "--methods",
            "sac",
            "--seeds",
            "1",
            "--timesteps",
            "300",
            "--eval-freq",
            "150",
            "--eval-episodes",
            "1",
            "--no-speed",
            "--out",
            "runs",
        ],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (elsewhere / "runs" / "sac" / "seed0" / "summary.json").exists()


def test_zoo_conf_accepts_a_packaged_name_and_rejects_an_unknown_one(capsys):
    from sb3_ofexi.harness.zoo import main as zoo_main
    from sb3_ofexi.harness.zoo import resolve_conf

    assert resolve_conf(["--env", "Hopper-v5", "-conf", "eaudesac.yml"])[-1].endswith("hyperparams/eaudesac.yml")
    assert resolve_conf(["--conf-file=polyprune_sac"])[0].endswith("hyperparams/polyprune_sac.yml")
    assert zoo_main(["train", "--algo", "sac_ofexi", "-conf", "no_such_file"]) == 2
    assert "packaged file" in capsys.readouterr().err
