"""The harness above the algorithms: runs (:mod:`.runs`), sweeps (:mod:`.sweep`), checkpoints
(:mod:`.checkpoint`), measurement (:mod:`.measure`), reports (:mod:`.report`), the command line
(:mod:`.cli`, ``sb3-ofexi``), rl-zoo3 (:mod:`.zoo`, :mod:`.tuning`), over one registry of methods
(:mod:`.registry`). ``import sb3_ofexi`` does not import it; it needs the ``harness`` extra
(``pip install 'sb3_ofexi[harness]'``: rl-zoo3, matplotlib, rliable, pandas, MuJoCo, onnx)."""
