"""The suite's exceptions.

Every error a user can cause or meet is one of these; the CLI prints its message
as one line and exits with the code the class carries, never a traceback::

    BenchError                  exit 1
    ├── ConfigError             exit 2   bad scenario/baseline file, bad option
    ├── EndpointError           exit 3   endpoint unreachable or unusable
    │   ├── AuthError                    401/403 from the endpoint
    │   └── ServerError                  5xx, malformed answers, missing model
    ├── ServerStartError        exit 3   a local llama-server did not start
    └── ResultsError            exit 4   results directory unreadable/unwritable
"""

from __future__ import annotations


class BenchError(Exception):
    """Base class; ``exit_code`` is what the CLI returns for it."""

    exit_code = 1


class ConfigError(BenchError):
    exit_code = 2


class EndpointError(BenchError):
    exit_code = 3


class AuthError(EndpointError):
    pass


class ServerError(EndpointError):
    pass


class ServerStartError(BenchError):
    exit_code = 3


class ResultsError(BenchError):
    exit_code = 4


class PerfSetupError(BenchError):
    """The performance comparison could not build its truth server or install a peer tool."""
