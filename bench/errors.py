"""The suite's exceptions and its one exit-code story.

Every error a user can cause or meet is one of these; the CLI prints its message
as one line and exits with the code the class carries, never a traceback::

    BenchError                      exit 70  (a bug in the suite)
    ├── ConfigError                 exit 2   bad scenario/baseline file, bad option
    ├── EndpointError               exit 3   endpoint unreachable or unusable
    │   ├── AuthError                        401/403 from the endpoint
    │   └── ServerError                      5xx, malformed answers, missing model
    │       ├── BodyDecodeError              a body that does not decompress
    │       └── BodyTooLarge                 a body or an SSE line beyond --max-body-mib
    ├── ServerStartError            exit 3   a local llama-server did not start
    ├── ResultsError                exit 4   results directory unreadable/unwritable
    │   └── NightlyLocked                    another nightly holds the results directory
    ├── PerfError                   exit 2   python -m bench.devtools.perf could not measure
    │   ├── PerfSetupError                   cannot build the truth server or install a peer
    │   └── NothingToScore                   a peer tool ran but left nothing to score
    └── TelemetryUnavailable        (caught) no NVML here, or a GPU stopped answering:
                                             the run goes on and records why

The same codes hold for every command, ``bench nightly`` included: 0 is success
(no regression), 1 a regression found (``nightly``, ``compare --fail-on-regression``),
5 a run whose error rate is above ``--max-error-rate``, 130 an interrupt; any other
non-zero code says why the command could not do its job.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    REGRESSION = 1  # nightly, compare --fail-on-regression, ab: a figure got worse
    CONFIG = 2  # bad configuration or options
    ENDPOINT = 3  # endpoint unusable, or a local server did not start
    RESULTS = 4  # results directory unreadable, unwritable or locked by another nightly
    ERROR_RATE = 5  # the run finished, but more requests failed than --max-error-rate allows
    UNDECIDED = 6  # nightly: a drop its spread could not tell from noise; bisect: only a range of commits
    INTERNAL = 70  # a bug in the suite (EX_SOFTWARE): the traceback is printed
    INTERRUPTED = 130  # Ctrl-C, SIGTERM: what was measured is kept, the run is partial


class BenchError(Exception):
    """Base class; ``exit_code`` is what the CLI returns for it."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(BenchError):
    exit_code = ExitCode.CONFIG


class PerfError(BenchError):
    """The side-by-side performance comparison (a developer tool) could not measure."""

    exit_code = ExitCode.CONFIG


class PerfSetupError(PerfError):
    """The performance comparison could not build its truth server or install a peer tool."""


class NothingToScore(PerfError):
    """A peer tool ran but left no measured request that the truth server served."""


class EndpointError(BenchError):
    exit_code = ExitCode.ENDPOINT


class AuthError(EndpointError):
    pass


class ServerError(EndpointError):
    pass


class BodyDecodeError(ServerError):
    """A response body that its Content-Encoding says is compressed, and is not."""


class BodyTooLarge(ServerError):
    """A response body (decompressed) or one SSE line larger than the suite reads."""


class ServerStartError(BenchError):
    exit_code = ExitCode.ENDPOINT


class ResultsError(BenchError):
    exit_code = ExitCode.RESULTS


class NightlyLocked(ResultsError):
    """Another nightly holds ``results/.nightly.lock``: two nightlies must not overlap."""


class TelemetryUnavailable(BenchError):
    """A telemetry source cannot be read; the sampler records the reason and the run goes on."""
