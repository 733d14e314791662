"""Developer tooling, kept out of the pipeline's way: nothing under ``bench`` imports it.

- ``perf``: this suite against guidellm, AIPerf and llama-benchy on a compiled truth server
  (``python -m bench.devtools.perf``);
- ``calibration``: false-positive rate and power of the comparison on synthetic records
  (``python -m bench.devtools.calibration``);
- ``synthetic_model``: gpt-oss-shaped GGUF files (``python -m bench.devtools.synthetic_model``);
- ``testing``: a faithful fake llama-server and record factories for tests.
"""
