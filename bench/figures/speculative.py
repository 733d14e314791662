"""Speculative decoding: how many drafted tokens the server accepted, per case.

A llama-server started with a draft model (``-md FILE --spec-type draft-simple``, or an
n-gram drafter) reports in each request's ``timings`` the tokens it drafted (``draft_n``) and
how many of them the target model accepted (``draft_n_accepted``). The case's acceptance is
the ratio of the sums (a long answer weighs as much as its tokens). Its effect on generation
speed is the case's tg: compare a server with and without the draft model (``bench ab``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.records import RequestRecord


@dataclass(frozen=True, slots=True)
class DraftSummary:
    requests: int  # measured requests that reported draft figures
    drafted: int
    accepted: int

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None

    def sentence(self) -> str:
        share = "-" if self.acceptance is None else f"{self.acceptance:.0%}"
        return (
            f"speculative decoding: {self.accepted:,} of {self.drafted:,} drafted tokens accepted ({share}) "
            f"over {self.requests} request(s)"
        )


def summarise_drafts(records: Sequence[RequestRecord]) -> DraftSummary | None:
    """Draft figures over a case's measured requests; None when the server reported none."""
    drafted = [
        r.timings for r in records if not r.warmup and r.ok and r.timings is not None and r.timings.draft_n is not None
    ]
    if not drafted:
        return None
    return DraftSummary(
        requests=len(drafted),
        drafted=sum(t.draft_n or 0 for t in drafted),
        accepted=sum(t.draft_n_accepted or 0 for t in drafted),
    )
