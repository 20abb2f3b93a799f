"""``VWEDError`` and its subclasses: every failure of a ``VWED.*`` call raises one.

Each class names one kind of failure (``.kind``, the supervisor's
``ServiceErrorKind``); ``VWEDDeviceError`` also carries the Modbus exception
``.code``. Scripts get every class as a global and as ``VWED.errors.<Name>``.
"""


class VWEDError(Exception):
    """A VWED call the runtime refused or could not complete."""

    kind = "error"

    def __init__(self, message="", code=None):
        super().__init__(message)
        self.message = message
        self.code = code


class VWEDArgumentError(VWEDError):
    """Unknown call, wrong argument shape or value; nothing was done."""

    kind = "bad_arguments"


class VWEDNotFoundError(VWEDError):
    """No such point, device, robot, function, location, ..."""

    kind = "not_found"


class VWEDTimeoutError(VWEDError, TimeoutError):
    kind = "timeout"


class VWEDTransportError(VWEDError, ConnectionError):
    """The device or peer is unreachable, or the connection was lost."""

    kind = "transport"


class VWEDDeviceError(VWEDError):
    """The device answered with a Modbus exception; ``.code`` is its code."""

    kind = "device_exception"


class VWEDPermissionError(VWEDError):
    """Refused by policy: a read-only point, a host not on the allow-list."""

    kind = "permission_denied"


class VWEDBusyError(VWEDError):
    """Queue full or too many requests waiting; may succeed later."""

    kind = "busy"


class VWEDLimitError(VWEDError):
    """A size or count limit of the runtime was reached."""

    kind = "limit_exceeded"


class VWEDNotConfiguredError(VWEDError):
    """Needs configuration that is missing (io_config, task_server_url, smtp_host)."""

    kind = "not_configured"


class VWEDConflictError(VWEDError):
    """Someone else holds it: a route, a function name, a lock."""

    kind = "conflict"


class VWEDFunctionError(VWEDError):
    """A function called through ``VWED.function.call`` raised."""

    kind = "raised"


class VWEDInternalError(VWEDError):
    kind = "internal"


ALL = (
    VWEDError,
    VWEDArgumentError,
    VWEDNotFoundError,
    VWEDTimeoutError,
    VWEDTransportError,
    VWEDDeviceError,
    VWEDPermissionError,
    VWEDBusyError,
    VWEDLimitError,
    VWEDNotConfiguredError,
    VWEDConflictError,
    VWEDFunctionError,
    VWEDInternalError,
)

_BY_KIND = {cls.kind: cls for cls in ALL}


def make(kind, code, message):
    """The exception for a failure the supervisor (or the native module) reports."""
    return _BY_KIND.get(kind, VWEDError)(message, code)


class Errors:
    """``VWED.errors``: the error classes, for ``except VWED.errors.VWEDTimeoutError``."""

    def __init__(self):
        for cls in ALL:
            setattr(self, cls.__name__, cls)
