"""Settings fail early with the variable's name; the CLI reports them without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import numpy as np
import pytest

from core.errors import ConfigError
from core.settings import load_settings
from workers.demo import session_minutes


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"POOL_SIZE": "lots"}, "POOL_SIZE"),
        ({"PORT": "70000"}, "PORT"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], name: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_production_pool_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POOL_SIZE", raising=False)
    s = load_settings(database_url="postgresql://u@h/d")
    # No ping per checkout: a read on a dropped connection is retried once instead
    # (loaders/sql.py; tests/security/test_faults.py restarts PostgreSQL under the app).
    assert (s.pool_size, s.max_overflow, s.pool_pre_ping) == (10, 20, False)
    assert s.plan_cache_mode == "force_generic_plan"
    assert s.statement_timeout_ms > 0
    assert s.asyncpg_dsn == "postgresql://u@h/d"
    assert s.sqlalchemy_url.drivername == "postgresql+asyncpg"


def test_cli_reports_bad_settings_without_traceback() -> None:
    env = {**os.environ, "POOL_SIZE": "lots", "DATABASE_URL": "postgresql://u@h/d"}
    done = subprocess.run(
        [sys.executable, "-m", "graphql_api", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "POOL_SIZE" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_migrate_and_demo_data_are_idempotent(make_database: object) -> None:
    url = make_database()  # type: ignore[operator]
    env = {**os.environ, "DATABASE_URL": url}
    for _ in range(2):
        migrate = subprocess.run(
            [sys.executable, "-m", "graphql_api", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr
    first = subprocess.run(
        [sys.executable, "-m", "graphql_api", "demo-data"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    second = subprocess.run(
        [sys.executable, "-m", "graphql_api", "demo-data"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    # 3,270 x 3 + 2,148 + 196 daily bars, 3 x 10 x 390 synthetic minutes, 10 x 1,440
    # COINX minutes, and UMBRL's: 28 full regular sessions and a half day (210 minutes) of
    # NYSE from 2024-10-28 to 2024-12-06, plus its seeded share of pre/post-market minutes.
    umbrl = session_minutes()
    local = umbrl["ts"].dt.tz_convert("America/New_York")
    minutes = local.dt.hour * 60 + local.dt.minute
    half_day = local.dt.date == date(2024, 11, 29)  # closes at 13:00
    close = np.where(half_day, 13 * 60, 16 * 60)
    regular = ((minutes >= 9 * 60 + 30) & (minutes < close)).sum()
    assert regular == 28 * 390 + 210
    assert f"10 symbols, {23854 + 14400 + len(umbrl)} bars written" in first.stderr
    assert "10 symbols, 0 bars written" in second.stderr
