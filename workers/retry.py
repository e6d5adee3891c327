"""When a failed ingest job runs again: exponential backoff with jitter, never for bad input."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.jobs import Job

from workers.providers import ProviderError


def is_permanent(error: BaseException) -> bool:
    """True for failures a retry cannot fix: bad input, missing files, rejected credentials."""
    if isinstance(error, ProviderError):
        return not error.transient
    return isinstance(error, ValueError | LookupError | FileNotFoundError | PermissionError)


@dataclass
class BackoffWithJitter(BaseRetryStrategy):
    """Retry after base·2^attempt seconds (capped), drawn uniformly from its upper half.

    The jitter spreads out jobs that failed together (a provider outage) so they do not all
    come back at the same instant.
    """

    max_attempts: int = 5
    base_seconds: float = 2.0
    max_seconds: float = 600.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait before the next try, after `attempts` previous tries."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0**attempts)
        return random.uniform(ceiling / 2, ceiling)

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        """No retry for permanent errors or when attempts are used up; else a jittered delay."""
        if is_permanent(exception) or job.attempts + 1 >= self.max_attempts:
            return None
        when = datetime.now(UTC) + timedelta(seconds=self.delay(job.attempts))
        return RetryDecision(retry_at=when)
