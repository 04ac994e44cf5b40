"""ZooKeeper error codes as exception classes (the names kazoo and the Java client use)."""

from __future__ import annotations

from controller.zk.constants import Err


class ZkException(Exception):
    """A request failed; `code` is the ZooKeeper error code, `reason` says what went wrong in
    a few words, `detail` is the message given when raised (if any)."""

    code: int = Err.SYSTEMERROR
    reason: str = "system error in the controller"

    def __init__(self, message: str = "", code: int | None = None) -> None:
        if code is not None:
            self.code = code
            self.reason = REASONS.get(code, f"ZooKeeper error {code}")
        self.detail = message
        super().__init__(message or f"{type(self).__name__} ({self.code})")


class ConnectionLossError(ZkException):
    """The connection broke before the reply: the outcome of a write is unknown."""

    code = Err.CONNECTIONLOSS
    reason = "connection to the controller lost"


class OperationTimeoutError(ZkException):
    """No reply in time."""

    code = Err.OPERATIONTIMEOUT
    reason = "no reply from the controller in time"


class MarshallingError(ZkException):
    """The server could not decode the request."""

    code = Err.MARSHALLINGERROR
    reason = "the controller could not decode the request"


class UnimplementedError(ZkException):
    """The server does not implement this operation."""

    code = Err.UNIMPLEMENTED
    reason = "operation not supported by the controller"


class BadArgumentsError(ZkException):
    """Invalid path or arguments."""

    code = Err.BADARGUMENTS
    reason = "invalid path or arguments"


class NoNodeError(ZkException):
    """The node does not exist."""

    code = Err.NONODE
    reason = "no such node"


class NoAuthError(ZkException):
    """The ACL does not allow this."""

    code = Err.NOAUTH
    reason = "not authorized (the node's ACL does not allow this)"


class BadVersionError(ZkException):
    """The expected version does not match."""

    code = Err.BADVERSION
    reason = "version does not match"


class NoChildrenForEphemeralsError(ZkException):
    """Ephemeral nodes cannot have children."""

    code = Err.NOCHILDRENFOREPHEMERALS
    reason = "ephemeral nodes cannot have children"


class NodeExistsError(ZkException):
    """The node already exists."""

    code = Err.NODEEXISTS
    reason = "node already exists"


class NotEmptyError(ZkException):
    """The node has children."""

    code = Err.NOTEMPTY
    reason = "node has children"


class SessionExpiredError(ZkException):
    """The session expired: its ephemerals are gone; make a new client."""

    code = Err.SESSIONEXPIRED
    reason = "session expired"


class InvalidACLError(ZkException):
    """The ACL is invalid."""

    code = Err.INVALIDACL
    reason = "invalid ACL"


class AuthFailedError(ZkException):
    """Authentication failed."""

    code = Err.AUTHFAILED
    reason = "authentication failed"


class NoWatcherError(ZkException):
    """No such watch to remove or check."""

    code = Err.NOWATCHER
    reason = "no such watch"


class RuntimeInconsistencyError(ZkException):
    """A multi-op failed because an earlier operation failed."""

    code = Err.RUNTIMEINCONSISTENCY
    reason = "an earlier operation of the multi-op failed"


_BY_CODE: dict[int, type[ZkException]] = {
    cls.code: cls
    for cls in (
        ConnectionLossError,
        OperationTimeoutError,
        MarshallingError,
        UnimplementedError,
        BadArgumentsError,
        NoNodeError,
        NoAuthError,
        BadVersionError,
        NoChildrenForEphemeralsError,
        NodeExistsError,
        NotEmptyError,
        SessionExpiredError,
        InvalidACLError,
        AuthFailedError,
        NoWatcherError,
        RuntimeInconsistencyError,
    )
}

RETRYABLE: tuple[type[ZkException], ...] = (ConnectionLossError, OperationTimeoutError)

# What went wrong, in a few words, for every code (`KeeperException.Code`), classed or not.
REASONS: dict[int, str] = {
    Err.SYSTEMERROR: "system error in the controller",
    Err.DATAINCONSISTENCY: "data inconsistency",
    Err.UNKNOWNSESSION: "unknown session",
    Err.NEWCONFIGNOQUORUM: "the new configuration has no quorum",
    Err.RECONFIGINPROGRESS: "a reconfiguration is in progress",
    Err.APIERROR: "API error",
    Err.INVALIDCALLBACK: "invalid callback",
    Err.SESSIONMOVED: "session moved to another controller",
    Err.NOTREADONLY: "the controller is read-only",
    Err.EPHEMERALONLOCALSESSION: "ephemeral nodes need a global session",
    Err.REQUESTTIMEOUT: "request timed out",
    Err.RECONFIGDISABLED: "reconfiguration is disabled",
    Err.SESSIONCLOSEDREQUIRESASLAUTH: "session closed: SASL authentication is required",
    Err.QUOTAEXCEEDED: "quota exceeded",
    Err.THROTTLEDOP: "operation throttled by the controller (retry later)",
    **{code: cls.reason for code, cls in _BY_CODE.items()},
}


def describe(exc: ZkException, subject: str = "") -> str:
    """One line for a person: `subject: what went wrong (detail)`, e.g. `/a: no such node`."""
    text = exc.reason
    if exc.detail and exc.detail != text:
        text += f" ({exc.detail})"
    return f"{subject}: {text}" if subject else text


def error_for(code: int, message: str = "") -> ZkException:
    cls = _BY_CODE.get(code)
    if cls is None:
        return ZkException(message or f"ZooKeeper error {code}", code)
    return cls(message)
