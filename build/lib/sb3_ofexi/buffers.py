"""Where ``DeviceReplayBuffer`` lived in 0.1.0: run checkpoints and replay buffers saved then
name its class by this path (pickle), so it stays importable. New code: ``sb3_ofexi.common.buffers``."""

from sb3_ofexi.common.buffers import DeviceReplayBuffer

__all__ = ["DeviceReplayBuffer"]
