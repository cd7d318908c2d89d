"""sb3_ofexi: Soft Actor-Critic that prunes its networks while it learns (OFEXiNet)."""

from sb3_ofexi.common.buffers import DeviceReplayBuffer
from sb3_ofexi.sac_ofexi.policies import MlpPolicy, SACOFEXiPolicy
from sb3_ofexi.sac_ofexi.presets import PRESETS
from sb3_ofexi.common.pruning import PruningCallback
from sb3_ofexi.sac_ofexi import SAC_OFEXi
from sb3_ofexi.version import __version__

__all__ = [
    "PRESETS", "DeviceReplayBuffer", "MlpPolicy", "PruningCallback", "SACOFEXiPolicy", "SAC_OFEXi", "__version__"
]
