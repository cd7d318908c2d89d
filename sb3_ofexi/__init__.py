"""sb3_ofexi: Soft Actor-Critic (and TD3, TQC) that prunes its networks while it learns (OFEXiNet),
and the peer pruning methods run the same way (PolyPruneSAC, EauDeSAC)."""

from sb3_ofexi.common.buffers import DeviceReplayBuffer
from sb3_ofexi.common.pruning import PruningCallback
from sb3_ofexi.eaudesac import EauDeSAC
from sb3_ofexi.polyprune import PolyPruneSAC
from sb3_ofexi.sac_ofexi import PRESETS, MlpPolicy, SAC_OFEXi, SACOFEXiPolicy
from sb3_ofexi.td3_ofexi import TD3_OFEXi, TD3OFEXiPolicy
from sb3_ofexi.tqc_ofexi import TQC_OFEXi, TQCOFEXiPolicy
from sb3_ofexi.version import __version__

__all__ = [
    "PRESETS",
    "DeviceReplayBuffer",
    "EauDeSAC",
    "MlpPolicy",
    "PolyPruneSAC",
    "PruningCallback",
    "SACOFEXiPolicy",
    "SAC_OFEXi",
    "TD3OFEXiPolicy",
    "TD3_OFEXi",
    "TQCOFEXiPolicy",
    "TQC_OFEXi",
    "__version__",
]
