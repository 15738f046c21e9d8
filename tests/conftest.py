"""Shared pytest configuration: hypothesis profiles, slow tests, golden files.

Hypothesis profiles (one place): ``ci`` (default, small budget, derandomized so
CI is reproducible) and ``thorough`` (many examples). Choose with
``HYPOTHESIS_PROFILE=thorough pytest``. Slow tests run with ``--runslow``.
Golden files are regenerated with ``--update-golden``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from current output")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow") or os.environ.get("SNNCOMP_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(autouse=True, scope="session")
def _private_calibration_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Calibrations measured by the tests go to a fresh directory, not the user's cache.

    So a test never loads a calibration some other version of the code measured; subprocesses
    (the CLI tests) inherit it through the environment.
    """
    previous = os.environ.get("SNNCOMP_CACHE")
    os.environ["SNNCOMP_CACHE"] = str(tmp_path_factory.mktemp("snncomp-cache"))
    yield
    if previous is None:
        os.environ.pop("SNNCOMP_CACHE", None)
    else:
        os.environ["SNNCOMP_CACHE"] = previous
