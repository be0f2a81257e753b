"""Where the real services for integration and conformance tests are.

Each service is found, in order:

1. from its environment variable (``TICKRAIL_POSTGRES_URL``, ``TICKRAIL_REDIS_URL``,
   ``TICKRAIL_KAFKA_URL`` = ``kafka://host:port``, ``TICKRAIL_S3_URL`` = the
   endpoint ``http://host:port``), as written by
   ``python scripts/test_services.py start --env-file .ci/services/env``;
2. else from a testcontainers container, if a Docker engine answers;
3. else the test is skipped, or fails when ``TICKRAIL_REQUIRE_SERVICES=1``
   (CI sets it, so a missing service cannot turn into a green "all skipped").

Use the session fixtures from a conftest::

    from tests.services import kafka_url, postgres_url, redis_url, s3_url  # noqa: F401
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

REQUIRE_ENV = "TICKRAIL_REQUIRE_SERVICES"
START_HINT = (
    "start them with: python scripts/test_services.py start --env-file .ci/services/env"
    " && source .ci/services/env"
)


def random_name(prefix: str = "t") -> str:
    """A name no other test run uses: topics, groups, schemas, key prefixes, buckets."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@functools.cache
def docker_unavailable() -> str | None:
    """Why no Docker engine can be used, or None if one answers (probed once per run)."""
    if not os.environ.get("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return "DOCKER_HOST is unset and /var/run/docker.sock does not exist"
    # A failed probe can leave the docker SDK's socket for the garbage
    # collector; collect it here so its ResourceWarning is not blamed on a test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=2)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:  # any failure means "no Docker" here
            return f"{type(exc).__name__}: {exc}"[:160]
        finally:
            gc.collect()
    return None


def _import(*names: str) -> ModuleType:
    """The first importable module; testcontainers moved modules between releases."""
    error: ImportError | None = None
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return importlib.import_module(name)
        except ImportError as exc:
            error = exc
    assert error is not None
    raise error


@contextlib.contextmanager
def _postgres_container() -> Iterator[str]:
    module = _import("testcontainers.community.postgres", "testcontainers.postgres")
    with module.PostgresContainer("postgres:16") as pg:
        yield pg.get_connection_url(driver=None)


@contextlib.contextmanager
def _redis_container() -> Iterator[str]:
    module = _import("testcontainers.community.redis", "testcontainers.redis")
    with module.RedisContainer("redis:7") as redis:
        yield f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    module = _import("testcontainers.community.kafka", "testcontainers.kafka")
    with module.KafkaContainer() as kafka:
        yield f"kafka://{kafka.get_bootstrap_server()}"


@contextlib.contextmanager
def _s3_container() -> Iterator[str]:
    module = _import("testcontainers.community.minio", "testcontainers.minio")
    with module.MinioContainer() as minio:
        config = minio.get_config()
        # The S3 adapter reads credentials from the AWS chain, as in production.
        saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        os.environ["AWS_ACCESS_KEY_ID"] = config["access_key"]
        os.environ["AWS_SECRET_ACCESS_KEY"] = config["secret_key"]
        try:
            yield f"http://{config['endpoint']}"
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@dataclass(frozen=True)
class Service:
    name: str
    env: str
    container: Callable[[], contextlib.AbstractContextManager[str]]


SERVICES = {
    "postgres": Service("Postgres", "TICKRAIL_POSTGRES_URL", _postgres_container),
    "redis": Service("Redis", "TICKRAIL_REDIS_URL", _redis_container),
    "kafka": Service("Kafka", "TICKRAIL_KAFKA_URL", _kafka_container),
    "s3": Service("S3", "TICKRAIL_S3_URL", _s3_container),
}


def _unavailable(message: str) -> Any:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {message}", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def service_url(kind: str) -> Iterator[str]:
    """The URL of service ``kind`` (postgres, redis, kafka, s3) for as long as the block runs."""
    service = SERVICES[kind]
    if url := os.environ.get(service.env):
        yield url
        return
    reason = docker_unavailable()
    if reason is not None:
        _unavailable(
            f"{service.env} is unset and no Docker engine answers ({reason}); {START_HINT}"
        )
    try:
        container = service.container()
    except ImportError as exc:
        _unavailable(
            f"{service.env} is unset and testcontainers cannot start {service.name}: {exc}"
        )
    with container as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://user@host:port/db``; isolate with a random ``?schema=``."""
    with service_url("postgres") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://host:port/db``; isolate with a random ``?prefix=``."""
    with service_url("redis") as url:
        yield url


@pytest.fixture(scope="session")
def kafka_url() -> Iterator[str]:
    """``kafka://host:port``; isolate with random topic and group names."""
    with service_url("kafka") as url:
        yield url


@pytest.fixture(scope="session")
def s3_url() -> Iterator[str]:
    """The S3 endpoint ``http://host:port``; isolate with a fresh bucket."""
    with service_url("s3") as url:
        yield url
