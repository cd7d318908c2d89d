"""Metadata and dependencies live in setup.cfg. This file adds what setup.cfg cannot say: the
repository's top-level ``hyperparams/`` (the source of the rl-zoo3 YAML files) is installed as
package data, ``sb3_ofexi/hyperparams/*.yml``, so an installed package finds its YAML files."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["sb3_ofexi", "sb3_ofexi.*"]), "sb3_ofexi.hyperparams"],
    package_dir={"sb3_ofexi.hyperparams": "hyperparams"},
    package_data={"sb3_ofexi.hyperparams": ["*.yml"]},
)
