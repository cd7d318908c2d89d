"""Building blocks shared by the algorithms: OFENet, the xi gate, the one surgery protocol,
complexity and budgets, the replay buffer, the compiled step, checkpoints and export."""
