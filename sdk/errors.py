"""Every error tickrail raises, in one tree.

    TickrailError
    ├── ConfigurationError          bad settings, unknown URL scheme, missing extra
    │   ├── AuthenticationError     the API refused the credentials (UNAUTHENTICATED)
    │   ├── PermissionDeniedError   the credentials do not cover this tenant or lifetime
    │   ├── InvalidArgumentError    a request field is missing or malformed (.field)
    │   ├── AlreadyExistsError      a lifetime id is taken by a different start
    │   └── LifetimeStateError      the lifetime's status does not allow this operation
    ├── AdapterError                a bus, store, blob or KV operation failed (.retriable)
    │   ├── AdapterClosedError      the adapter was used after close()
    │   ├── BlobIntegrityError      a blob's bytes do not match its recorded digest
    │   └── UnavailableError        a service did not answer in time; retry (retriable)
    ├── DefinitionError             a Task, Plan or graph is ill-formed (.problems)
    │   └── GraphValidationError    the graph's wiring is invalid
    ├── PolicyError                 a guardrail policy file or condition is invalid
    ├── EnvelopeError               a message cannot be decoded or breaks the schema
    ├── ExecutionError              running a lifetime went wrong
    │   ├── NodeTimeoutError        a node ran past its timeout
    │   ├── RoutingError            a Plan chose a next node the graph does not allow
    │   ├── OwnerError              the embedded state directory's owner is unreachable
    │   └── NotFoundError           nothing recorded under this id
    │       ├── LifetimeNotFoundError   no such lifetime
    │       └── ExecutionNotFoundError  no such execution (in this lifetime)
    └── RoleError                   a role of this process could not start or stopped
        ├── RoleFailedError         a running role stopped with an error (.role, .error)
        └── StartupTimeoutError     startup did not finish in start_timeout_s (.phase)

Driver exceptions (sqlite3, asyncpg, aiokafka, botocore, redis, grpc) never
reach callers: adapters and the API client translate them at their boundary
with ``raise ... from exc``. The lifecycle API carries the class name across
the wire, so a remote caller catches the same class a local one would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class TickrailError(Exception):
    """Root of every error tickrail raises on purpose."""


class ConfigurationError(TickrailError):
    """Settings are invalid, or name something that cannot be used."""


class AuthenticationError(ConfigurationError):
    """The lifecycle API did not accept the token (UNAUTHENTICATED)."""


class PermissionDeniedError(ConfigurationError):
    """The token is valid, but not for this tenant or lifetime (PERMISSION_DENIED)."""


class InvalidArgumentError(ConfigurationError):
    """A request field is missing or malformed; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class AlreadyExistsError(ConfigurationError):
    """The lifetime id is already used by a different start."""


class AdapterError(TickrailError):
    """An adapter operation failed.

    ``retriable`` says whether trying the same operation again may succeed
    (a dropped connection) or not (a constraint violation). ``dependency``
    names the service that failed (``postgres``, ``kafka``, ``redis``, ``s3``,
    ...), so a role can say which one it is waiting for.
    """

    def __init__(self, message: str, *, retriable: bool = False, dependency: str = "") -> None:
        super().__init__(message)
        self.retriable = retriable
        self.dependency = dependency


class AdapterClosedError(AdapterError):
    """The adapter was used after ``close()``."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is closed; open a new one", retriable=False)


class BlobIntegrityError(AdapterError):
    """A blob's bytes do not match the digest recorded when it was written."""


class UnavailableError(AdapterError):
    """A service did not answer in time (e.g. a start not recorded yet); retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=True)


class DefinitionError(TickrailError):
    """A Task, Plan or graph definition is ill-formed.

    Every problem found is collected in ``problems`` and the message lists them
    all, so one run of the check shows everything to fix.
    """

    def __init__(self, subject: str, problems: Sequence[str]) -> None:
        self.subject = subject
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{subject}: {count} {noun}:\n{lines}")


class GraphValidationError(DefinitionError):
    """The graph's nodes and edges do not form a valid AgentGraph."""


class PolicyError(TickrailError):
    """A guardrail policy file or condition is invalid, or failed to evaluate."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        rule: str | None = None,
    ) -> None:
        self.file, self.line, self.rule = file, line, rule
        where = ", ".join(
            part
            for part in (
                file,
                f"line {line}" if line is not None else None,
                f"rule {rule!r}" if rule else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class EnvelopeError(TickrailError):
    """A message could not be decoded, or is missing a required field."""


class ExecutionError(TickrailError):
    """Running a lifetime went wrong."""


class NodeTimeoutError(ExecutionError):
    """A node ran longer than its timeout."""


class RoutingError(ExecutionError):
    """A Plan chose next nodes that the graph does not allow from it."""


class LifetimeStateError(ConfigurationError):
    """The lifetime's status does not allow the operation (e.g. resume a RUNNING one)."""


class OwnerError(ExecutionError):
    """The process that owns an embedded state directory cannot be reached."""


class NotFoundError(ExecutionError):
    """Nothing is recorded under this id."""


class LifetimeNotFoundError(NotFoundError):
    """No lifetime with this id is recorded."""


class ExecutionNotFoundError(NotFoundError):
    """No execution with this id is recorded (for this lifetime)."""


class RoleError(TickrailError):
    """A role (data plane, control plane, executor) of this process failed."""


class RoleFailedError(RoleError):
    """A role stopped with an error while the process ran.

    ``role`` names it (``data_plane``, ``control_plane``, ``executor``, or a
    helper task such as ``watcher``); ``error`` is what it raised.
    """

    def __init__(self, role: str, error: BaseException) -> None:
        self.role, self.error = role, error
        what = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        super().__init__(f"the {role.replace('_', ' ')} stopped with an error: {what}")


class StartupTimeoutError(RoleError):
    """Starting the adapters and roles took longer than ``start_timeout_s``.

    ``phase`` says what it was still waiting for (e.g. ``opening the bus``).
    """

    def __init__(self, seconds: float, phase: str) -> None:
        self.seconds, self.phase = seconds, phase
        super().__init__(
            f"startup did not finish within {seconds:g} s (still {phase}); check that the "
            "service is reachable, or raise start_timeout_s"
        )


def join_problems(problems: Iterable[str]) -> str:
    """Render problems one per line, for messages that wrap several."""
    return "\n".join(f"  - {p}" for p in problems)
