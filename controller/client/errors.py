"""ZooKeeper error codes as exception classes (the names kazoo and the Java client use)."""

from __future__ import annotations

from controller.zk.constants import Err


class ZkException(Exception):
    """A request failed; `code` is the ZooKeeper error code."""

    code: int = Err.SYSTEMERROR

    def __init__(self, message: str = "", code: int | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message or f"{type(self).__name__} ({self.code})")


class ConnectionLossError(ZkException):
    """The connection broke before the reply: the outcome of a write is unknown."""

    code = Err.CONNECTIONLOSS


class OperationTimeoutError(ZkException):
    """No reply in time."""

    code = Err.OPERATIONTIMEOUT


class MarshallingError(ZkException):
    """The server could not decode the request."""

    code = Err.MARSHALLINGERROR


class UnimplementedError(ZkException):
    """The server does not implement this operation."""

    code = Err.UNIMPLEMENTED


class BadArgumentsError(ZkException):
    """Invalid path or arguments."""

    code = Err.BADARGUMENTS


class NoNodeError(ZkException):
    """The node does not exist."""

    code = Err.NONODE


class NoAuthError(ZkException):
    """The ACL does not allow this."""

    code = Err.NOAUTH


class BadVersionError(ZkException):
    """The expected version does not match."""

    code = Err.BADVERSION


class NoChildrenForEphemeralsError(ZkException):
    """Ephemeral nodes cannot have children."""

    code = Err.NOCHILDRENFOREPHEMERALS


class NodeExistsError(ZkException):
    """The node already exists."""

    code = Err.NODEEXISTS


class NotEmptyError(ZkException):
    """The node has children."""

    code = Err.NOTEMPTY


class SessionExpiredError(ZkException):
    """The session expired: its ephemerals are gone; make a new client."""

    code = Err.SESSIONEXPIRED


class InvalidACLError(ZkException):
    """The ACL is invalid."""

    code = Err.INVALIDACL


class AuthFailedError(ZkException):
    """Authentication failed."""

    code = Err.AUTHFAILED


class NoWatcherError(ZkException):
    """No such watch to remove or check."""

    code = Err.NOWATCHER


class RuntimeInconsistencyError(ZkException):
    """A multi-op failed because an earlier operation failed."""

    code = Err.RUNTIMEINCONSISTENCY


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


def error_for(code: int, message: str = "") -> ZkException:
    cls = _BY_CODE.get(code)
    if cls is None:
        return ZkException(message or f"ZooKeeper error {code}", code)
    return cls(message)
