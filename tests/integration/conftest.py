"""Integration tests talk to real services (see tests/services.py).

Each test module that asks for ``deployment`` gets its own: its own Postgres
schema, topic prefix, bucket and Redis prefix, and its own role processes.
"""

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.integration.cloud import cloud_config, deployment
from tests.services import kafka_url, postgres_url, redis_url, s3_url

__all__ = [  # fixtures
    "cloud_config",
    "deployment",
    "kafka_url",
    "postgres_url",
    "redis_url",
    "s3_url",
]


@pytest.fixture(scope="session", autouse=True)
def dispatch_secret() -> Iterator[None]:
    """The cloud profile's roles need the dispatch secret; processes the tests start
    inherit it from here (one value for every role, as in a deployment)."""
    if os.environ.get("TICKRAIL_DISPATCH_SECRET"):
        yield
        return
    os.environ["TICKRAIL_DISPATCH_SECRET"] = secrets.token_hex(32)
    try:
        yield
    finally:
        os.environ.pop("TICKRAIL_DISPATCH_SECRET", None)
