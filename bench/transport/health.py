"""Waiting for a server's ``/health``: the one loop every caller uses.

Three callers, three policies, one loop:

- a server the suite starts (``bench.load.server``) is ready at 200; its process dying
  ends the wait at once;
- a remote server switched to an A/B variant (``bench.flows.ab``) is ready at 200;
- an endpoint about to be measured (``bench.load.preflight``) is ready at anything but
  503 (llama-server answers 503 while it loads its model; a server without
  ``/health`` answers 404 and is ready); one that cannot be reached fails at once
  before a run and is waited for mid-run (a restarted server).

The wait is bounded by ``timeout_s`` and polls with a back-off from
``first_delay_s`` to ``max_delay_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.errors import EndpointError

ReadyWhen = Callable[[int], bool]


def ok_200(status: int) -> bool:
    return status == 200


def not_loading(status: int) -> bool:
    """Anything but 503: llama-server's 'Loading model' answer."""
    return status != 503


def describe_transport_error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc or 'no detail'}"


class HealthTimeout(EndpointError):
    """The server did not become ready within the bound; ``last`` says what it last answered."""

    def __init__(self, message: str, last: str) -> None:
        super().__init__(message)
        self.last = last


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    ready_when: ReadyWhen = ok_200
    fail_when_unreachable: bool = False  # before a run: waiting would not help
    first_delay_s: float = 0.1
    max_delay_s: float = 0.1
    request_timeout_s: float = 3.0


def wait_for_health(
    url: str,
    timeout_s: float,
    policy: HealthPolicy = HealthPolicy(),
    *,
    api_key: str | None = None,
    alive: Callable[[], None] = lambda: None,
    say: Callable[[str], None] = lambda _: None,
) -> None:
    """Poll ``url``/health until ``policy.ready_when`` its status; see the module docstring.

    ``alive`` raises when what is waited for has died (a started server's
    process); ``say`` is told once, when the first answer is not ready yet.
    Raises ``EndpointError`` when unreachable and the policy says fail,
    ``HealthTimeout`` when the bound passes.
    """
    health = f"{url.rstrip('/')}/health"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key is not None else {}
    deadline = time.monotonic() + timeout_s
    delay = policy.first_delay_s
    told = False
    with httpx.Client(timeout=policy.request_timeout_s, trust_env=False, headers=headers) as http:
        while True:
            alive()
            try:
                with http.stream("GET", health) as response:
                    status = response.status_code  # the body is not read: a trickling one cannot hold the wait
            except httpx.HTTPError as exc:
                if policy.fail_when_unreachable:
                    raise EndpointError(f"cannot reach {url}: {describe_transport_error(exc)}") from None
                now, last = "cannot be reached", "still cannot be reached"
            else:
                if policy.ready_when(status):
                    return
                if status == 503:
                    now, last = "is loading its model (HTTP 503)", "still answers 503 (loading)"
                else:
                    now, last = f"answers /health with HTTP {status}", f"still answers /health with HTTP {status}"
            if not told:
                say(f"{url} {now}; waiting up to {timeout_s:g} s")
                told = True
            if time.monotonic() + delay > deadline:
                raise HealthTimeout(f"{url} {last} after {timeout_s:g} s", last)
            time.sleep(delay)
            delay = min(delay * 2, policy.max_delay_s)
