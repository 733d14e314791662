"""GPU and server telemetry during runs: NVML, a remote nvidia-smi command, llama-server /metrics.

``samples`` holds the records (a leaf: the store reads them), ``nvml``, ``smi`` and
``prom`` the sources, ``sampler`` the background thread that writes them into the
run directory, and ``figures`` what a run's samples say per case.
"""
