"""Integration tests talk to real services (see tests/services.py)."""

from tests.services import kafka_url, postgres_url, redis_url, s3_url

__all__ = ["kafka_url", "postgres_url", "redis_url", "s3_url"]  # session fixtures
