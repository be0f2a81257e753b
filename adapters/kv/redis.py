"""Redis KVStore (``redis://host:port/db?prefix=tickrail:``) on redis.asyncio.

Counter hashes are updated by one Lua script, so a read-modify-write such as
"keep the maximum" is atomic across every process sharing the Redis, and the
update plus the reply cost one round trip.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import ReadOnlyError, RedisError, TryAgainError

from tickrail.sdk._redact import redact_url
from tickrail.sdk.errors import AdapterError, ConfigurationError

from .._lifecycle import Lifecycle
from .base import Counted, CounterKey

# KEYS[1]: the hash. ARGV: ttl in ms ("" for none), number of `add` pairs, then
# the `add` field/value pairs, then the `maximum` pairs. A missing field counts
# as absent for `maximum` (it takes the value, as MemoryKV does).
_UPDATE_COUNTERS = """
local key = KEYS[1]
local created = redis.call('EXISTS', key) == 0
local i = 3
for _ = 1, tonumber(ARGV[2]) do
    redis.call('HINCRBYFLOAT', key, ARGV[i], ARGV[i + 1])
    i = i + 2
end
while i < #ARGV do
    local current = redis.call('HGET', key, ARGV[i])
    if not current or tonumber(current) < tonumber(ARGV[i + 1]) then
        redis.call('HSET', key, ARGV[i], ARGV[i + 1])
    end
    i = i + 2
end
if created and ARGV[1] ~= '' and redis.call('EXISTS', key) == 1 then
    redis.call('PEXPIRE', key, ARGV[1])
end
return redis.call('HGETALL', key)
"""

# KEYS: the marker, the seen set, then the counter hashes. ARGV: the token, the
# number of `add` pairs, one ttl per hash ("" for none), then the `add` pairs,
# then the `maximum` pairs. Returns nil when the marker is gone, else
# {counted (0/1), HGETALL of each hash...}. One script, so "counted already?"
# and the update are one atomic step (keys must share a slot on Redis Cluster:
# they share the prefix, so use a hash tag in it there).
_COUNT_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
    return false
end
local hashes = #KEYS - 2
local counted = redis.call('SADD', KEYS[2], ARGV[1])
if counted == 1 then
    local first = 3 + hashes
    local adds = tonumber(ARGV[2])
    for h = 1, hashes do
        local key = KEYS[2 + h]
        local ttl = ARGV[2 + h]
        local created = redis.call('EXISTS', key) == 0
        local i = first
        for _ = 1, adds do
            redis.call('HINCRBYFLOAT', key, ARGV[i], ARGV[i + 1])
            i = i + 2
        end
        while i < #ARGV do
            local current = redis.call('HGET', key, ARGV[i])
            if not current or tonumber(current) < tonumber(ARGV[i + 1]) then
                redis.call('HSET', key, ARGV[i], ARGV[i + 1])
            end
            i = i + 2
        end
        if created and ttl ~= '' and redis.call('EXISTS', key) == 1 then
            redis.call('PEXPIRE', key, ttl)
        end
    end
end
local out = {counted}
for h = 1, hashes do
    out[h + 1] = redis.call('HGETALL', KEYS[2 + h])
end
return out
"""

# Lost connections, timeouts, and a primary that just failed over.
_RETRIABLE = (
    aioredis.ConnectionError,
    aioredis.TimeoutError,
    OSError,
    ReadOnlyError,
    TryAgainError,
)


def _error(what: str, exc: Exception) -> AdapterError:
    return AdapterError(
        f"{what}: {type(exc).__name__}: {exc}",
        retriable=isinstance(exc, _RETRIABLE),
        dependency="redis",
    )


def _ttl_ms(ttl: float) -> int:
    return max(1, round(ttl * 1000))


def _text(field: bytes | str) -> str:
    return field.decode() if isinstance(field, bytes) else field


def _counters(flat: list[bytes]) -> dict[str, float]:
    return {_text(flat[i]): float(flat[i + 1]) for i in range(0, len(flat), 2)}


def _redact(url: str) -> str:
    """The URL for messages: the password and secret parameters replaced by ***."""
    return redact_url(url)


class RedisKV(Lifecycle):
    """``redis://host:port/db?prefix=tickrail:`` (or ``rediss://`` for TLS).

    Options (URL query or keyword): ``prefix`` (prepended to every key, default
    ``tickrail:``). Other query parameters (``socket_timeout``,
    ``max_connections``, ...) go to redis-py. Put a password in the URL only
    from a secret (``redis://:PASSWORD@host``); messages never show it.
    """

    def __init__(self, url: str, **options: Any) -> None:
        parts = urlsplit(url)
        shown = _redact(url)
        if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
            raise ConfigurationError(
                f"Redis URL must look like redis://host:port/db, got {shown!r}"
            )
        query = dict(parse_qsl(parts.query))
        unknown = set(options) - {"prefix"}
        if unknown:
            raise ConfigurationError(f"unknown RedisKV options: {sorted(unknown)}")
        self.prefix = str(options.get("prefix", query.pop("prefix", "tickrail:")))
        # Bounded by default: a Redis that accepts and never answers must fail
        # a call into a retry, not hang the control plane.
        query.setdefault("socket_timeout", "10")
        query.setdefault("socket_connect_timeout", "5")
        self._url = urlunsplit(parts._replace(query=urlencode(query)))
        try:
            port = parts.port or 6379
        except ValueError as exc:
            raise ConfigurationError(f"{shown!r}: {exc}") from exc
        self.where = f"redis {parts.hostname}:{port}{parts.path or '/0'}"
        self._redis: aioredis.Redis | None = None
        self._update: Any = None
        self._count_once: Any = None

    @property
    def redis(self) -> aioredis.Redis:
        self._check_open()
        if self._redis is None:
            raise AdapterError("RedisKV used before start()")
        return self._redis

    async def _start(self) -> None:
        try:
            # Credentials are not settings: a URL without a password takes the
            # standard REDIS_PASSWORD variable (a Kubernetes secret reference).
            password = None if urlsplit(self._url).password else os.environ.get("REDIS_PASSWORD")
            client = aioredis.Redis.from_url(
                self._url, decode_responses=False, password=password or None
            )
        except ValueError as exc:
            raise ConfigurationError(f"bad Redis URL for {self.where}: {exc}") from exc
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise _error(f"cannot connect to {self.where}", exc) from exc
        except TypeError as exc:  # an unknown URL parameter reaches the connection
            await client.aclose()
            raise ConfigurationError(f"bad Redis URL for {self.where}: {exc}") from exc
        self._redis = client
        self._update = client.register_script(_UPDATE_COUNTERS)
        self._count_once = client.register_script(_COUNT_ONCE)

    async def _close(self) -> None:
        client, self._redis, self._update, self._count_once = self._redis, None, None, None
        if client is not None:
            await client.aclose()

    async def get(self, key: str) -> bytes | None:
        r = self.redis
        try:
            value = await r.get(self.prefix + key)
        except (RedisError, OSError) as exc:
            raise _error(f"cannot get {self.prefix + key!r} from {self.where}", exc) from exc
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        r = self.redis
        try:
            await r.set(self.prefix + key, value, px=_ttl_ms(ttl) if ttl is not None else None)
        except (RedisError, OSError) as exc:
            raise _error(f"cannot set {self.prefix + key!r} on {self.where}", exc) from exc

    async def update_counters(
        self,
        key: str,
        add: Mapping[str, float] | None = None,
        maximum: Mapping[str, float] | None = None,
        ttl: float | None = None,
    ) -> dict[str, float]:
        self._check_open()
        if self._update is None:
            raise AdapterError("RedisKV used before start()")
        add, maximum = add or {}, maximum or {}
        args: list[str | int] = ["" if ttl is None else _ttl_ms(ttl), len(add)]
        for field, value in add.items():
            args += [field, repr(float(value))]
        for field, value in maximum.items():
            args += [field, repr(float(value))]
        try:
            flat = await self._update(keys=[self.prefix + key], args=args)
        except (RedisError, OSError) as exc:
            raise _error(
                f"cannot update counters {self.prefix + key!r} on {self.where}", exc
            ) from exc
        return _counters(flat)

    async def count_once(
        self,
        *,
        marker: str,
        seen: str,
        token: str,
        keys: Sequence[CounterKey],
        add: Mapping[str, float],
        maximum: Mapping[str, float],
    ) -> Counted | None:
        self._check_open()
        if self._count_once is None:
            raise AdapterError("RedisKV used before start()")
        p = self.prefix
        args: list[str | int] = [token, len(add)]
        args += ["" if k.ttl is None else _ttl_ms(k.ttl) for k in keys]
        for field, value in add.items():
            args += [field, repr(float(value))]
        for field, value in maximum.items():
            args += [field, repr(float(value))]
        try:
            reply = await self._count_once(
                keys=[p + marker, p + seen, *(p + k.key for k in keys)], args=args
            )
        except (RedisError, OSError) as exc:
            raise _error(f"cannot count {token!r} in {p + seen!r} on {self.where}", exc) from exc
        if reply is None:
            return None
        return Counted(bool(int(reply[0])), [_counters(flat) for flat in reply[1:]])

    async def expire(self, key: str, ttl: float) -> None:
        r = self.redis
        try:
            await r.pexpire(self.prefix + key, _ttl_ms(ttl))
        except (RedisError, OSError) as exc:
            raise _error(f"cannot expire {self.prefix + key!r} on {self.where}", exc) from exc

    async def get_counters(self, key: str) -> dict[str, float]:
        r = self.redis
        try:
            flat = await r.hgetall(self.prefix + key)
        except (RedisError, OSError) as exc:
            raise _error(
                f"cannot read counters {self.prefix + key!r} on {self.where}", exc
            ) from exc
        return {_text(k): float(v) for k, v in flat.items()}

    async def delete(self, key: str) -> None:
        r = self.redis
        try:
            await r.delete(self.prefix + key)
        except (RedisError, OSError) as exc:
            raise _error(f"cannot delete {self.prefix + key!r} on {self.where}", exc) from exc
