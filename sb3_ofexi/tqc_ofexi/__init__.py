from sb3_ofexi.tqc_ofexi.policies import MlpPolicy, MultiInputPolicy, TQCOFEXiPolicy
from sb3_ofexi.tqc_ofexi.tqc_ofexi import TQC_OFEXi

__all__ = ["MlpPolicy", "MultiInputPolicy", "TQCOFEXiPolicy", "TQC_OFEXi"]
