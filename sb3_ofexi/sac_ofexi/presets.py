"""The presets moved to :mod:`sb3_ofexi.common.presets` (every OFEXi algorithm shares them); this
name stays for code that imports it from here."""

from sb3_ofexi.common.presets import DEFAULT_PRESET, PRESETS, get_preset

__all__ = ["DEFAULT_PRESET", "PRESETS", "get_preset"]
