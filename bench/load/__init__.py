"""Putting load on an endpoint: exact prompts, load loops, workers, and the local server.

Enters: cases (``bench.inputs``) and an endpoint, or a ``llama-server`` to start on loopback.
Leaves: one ``RequestRecord`` per request (``bench.records``) through the transport's lanes, from
one event loop, from worker processes or from Ray actors; the preflight's view of the endpoint;
a started server's address and any fallback its start needed.
"""
