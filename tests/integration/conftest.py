"""Integration tests talk to real services (see tests/services.py).

Each test module that asks for ``deployment`` gets its own: its own Postgres
schema, topic prefix, bucket and Redis prefix, and its own role processes.
"""

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
