"""Speed and size benchmarks of SAC_OFEXi; every figure is a ratio measured in one process."""
