"""The topics a Kafka bus uses: created on first use with the configured partitions
(so a broker's auto-create default never decides them), and remembered until a
sign that the broker may have lost them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from ._kafka_calls import connect_within, kafka_error, within
from ._kafka_settings import FRAMING, KafkaSettings


class KafkaTopics:
    """Looks topics up, creates the missing ones, and caches which exist."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._where = ",".join(settings.bootstrap)
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()
        #: topics known to exist on the broker (looked up or created by us)
        self.known: set[str] = set()

    def forget(self) -> None:
        """Look every topic up again before its next use (the broker may have lost it)."""
        self.known.clear()

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def _client(self) -> AIOKafkaAdminClient:
        async with self._lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self._settings.bootstrap, client_id=self._settings.client_id
                )
                await connect_within(
                    self._settings.connect_timeout,
                    admin.start(),
                    f"a Kafka admin client to {self._where}",
                    admin.close,
                )
                self._admin = admin
            return self._admin

    async def _drop(self) -> None:
        """A failed admin client is not reused: the next call connects afresh."""
        async with self._lock:
            admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await within(self._settings.connect_timeout, admin.close())

    async def ensure(self, topics: Sequence[str]) -> None:
        """Create those of ``topics`` that the broker does not have (with the
        configured partitions and replication), unless known to exist already."""
        wanted = [t for t in dict.fromkeys(topics) if t not in self.known]
        if not wanted:
            return
        admin = await self._client()
        s = self._settings
        topic_configs = {"max.message.bytes": str(s.max_message_bytes + FRAMING)}
        try:
            # Only ask to create what is missing: a principal allowed to use
            # pre-provisioned topics may not be allowed to create any.
            existing = set(await within(s.connect_timeout, admin.list_topics()))
            missing = [t for t in wanted if t not in existing]
            response = None
            if missing:
                response = await within(
                    s.connect_timeout,
                    admin.create_topics(
                        [
                            NewTopic(t, s.partitions, s.replication, topic_configs=topic_configs)
                            for t in missing
                        ]
                    ),
                )
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._drop()
            self.forget()
            raise kafka_error(f"cannot create Kafka topics {wanted} on {self._where}", exc) from exc
        for topic_error in response.topic_errors if response is not None else ():
            topic, code = topic_error[0], topic_error[1]
            error_type = for_code(code)
            if code != 0 and error_type is not TopicAlreadyExistsError:
                cause = error_type(topic_error[2] if len(topic_error) > 2 else "")
                raise kafka_error(f"cannot create Kafka topic {topic!r} on {self._where}", cause)
        self.known.update(wanted)
