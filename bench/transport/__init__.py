"""The HTTP transport: one job, talking to the endpoint.

``client`` builds chat requests and times them into ``Exchange`` results,
``lanes`` drives one httpcore connection per stream (the cheap path for chat
requests), ``sse`` parses server-sent events, and ``health`` waits for a
server's ``/health``. Nothing here knows about scenarios, runs or figures.
"""
