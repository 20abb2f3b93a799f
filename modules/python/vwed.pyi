"""Type stubs for the global ``VWED`` object of VWED Edge scripts.

Put this file next to your scripts (or on your editor's stub path) and add
``from vwed import VWED`` under ``if TYPE_CHECKING:`` for completion. At run time the
runtime provides ``VWED`` as a global; nothing needs importing.

Every failing ``VWED.*`` call raises ``VWEDError`` or one of its subclasses below,
one per kind of failure (``.kind``). They are globals of every script and also
``VWED.errors.<Name>``, so ``except VWEDTimeoutError:`` works without an import::

    try:
        VWED.device.modbus("press").read_holding(100)
    except VWEDDeviceError as e:      # the device answered with a Modbus exception
        print(e.code)                 # e.g. 2 (illegal data address)
    except VWEDTransportError:        # device unreachable, connection lost
        ...
"""

from typing import Any, Awaitable, Callable, Coroutine, Dict, List, Mapping, Optional, TypeVar, Union

_F = TypeVar("_F", bound=Callable[..., Any])
JSON = Any

class VWEDError(Exception):
    """A VWED call the runtime refused or could not complete."""
    kind: str
    message: str
    code: Optional[int]

class VWEDArgumentError(VWEDError):
    """kind "bad_arguments": unknown call, wrong argument shape or value; nothing was done."""
class VWEDNotFoundError(VWEDError):
    """kind "not_found": no such point, device, robot, function, location, timer."""
class VWEDTimeoutError(VWEDError, TimeoutError):
    """kind "timeout": the device, peer or function did not answer in time."""
class VWEDTransportError(VWEDError, ConnectionError):
    """kind "transport": device or peer unreachable, connection lost."""
class VWEDDeviceError(VWEDError):
    """kind "device_exception": the device answered with a Modbus exception; ``code``
    is its exception code (2 = illegal data address, ...)."""
    code: int
class VWEDPermissionError(VWEDError):
    """kind "permission_denied": a read-only point, a host not in http_allow_hosts."""
class VWEDBusyError(VWEDError):
    """kind "busy": a queue is full; may succeed later."""
class VWEDLimitError(VWEDError):
    """kind "limit_exceeded": a size or count limit of the runtime."""
class VWEDNotConfiguredError(VWEDError):
    """kind "not_configured": io_config, task_server_url or smtp_host missing."""
class VWEDConflictError(VWEDError):
    """kind "conflict": a route or function name taken, a lock held by another task."""
class VWEDFunctionError(VWEDError):
    """kind "raised": a function called through VWED.function.call raised."""
class VWEDInternalError(VWEDError):
    """kind "internal": a fault of the runtime itself."""

class _Errors:
    VWEDError: type[VWEDError]
    VWEDArgumentError: type[VWEDArgumentError]
    VWEDNotFoundError: type[VWEDNotFoundError]
    VWEDTimeoutError: type[VWEDTimeoutError]
    VWEDTransportError: type[VWEDTransportError]
    VWEDDeviceError: type[VWEDDeviceError]
    VWEDPermissionError: type[VWEDPermissionError]
    VWEDBusyError: type[VWEDBusyError]
    VWEDLimitError: type[VWEDLimitError]
    VWEDNotConfiguredError: type[VWEDNotConfiguredError]
    VWEDConflictError: type[VWEDConflictError]
    VWEDFunctionError: type[VWEDFunctionError]
    VWEDInternalError: type[VWEDInternalError]

class Response:
    status: int
    body: Any
    headers: Dict[str, str]
    def __init__(self, status: int = 200, body: Any = None, headers: Optional[Mapping[str, str]] = None) -> None: ...

class _Api:
    # Routes under /script-api need an operator login or an API token, unless
    # registered with public=True (a PLC or device webhook that cannot send one).
    def register_route(self, path: str = ..., method: str = "GET", handler: Callable[..., Any] = ..., description: str = "", public: bool = False, **kw: Any) -> Callable[..., Any]: ...
    def register(self, path: str, method: str = "GET", description: str = "", public: bool = False, **kw: Any) -> Callable[[_F], _F]: ...
    def get(self, path: str, description: str = "", public: bool = False, **kw: Any) -> Callable[[_F], _F]: ...
    def post(self, path: str, description: str = "", public: bool = False, **kw: Any) -> Callable[[_F], _F]: ...
    def put(self, path: str, description: str = "", public: bool = False, **kw: Any) -> Callable[[_F], _F]: ...
    def delete(self, path: str, description: str = "", public: bool = False, **kw: Any) -> Callable[[_F], _F]: ...
    def patch(self, path: str, description: str = "", public: bool = False, **kw: Any) -> Callable[[_F], _F]: ...
    def response(self, status: int = 200, body: Any = None, headers: Optional[Mapping[str, str]] = None) -> Response: ...
    def clear_all(self) -> None: ...

class _Function:
    def register(
        self,
        name: Union[str, Callable[..., Any], None] = None,
        handler: Optional[Callable[..., Any]] = None,
        description: str = "",
        parameters: Optional[List[Dict[str, Any]]] = None,
        return_schema: Optional[Dict[str, Any]] = None,
        tags: Optional[List[str]] = None,
        params: Optional[List[str]] = None,
        **kw: Any,
    ) -> Any: ...
    def call(self, name: str = ..., args: JSON = None, timeout: Optional[float] = None, **kw: Any) -> JSON:
        """Raises VWEDArgumentError when ``args`` do not fit the function's signature,
        VWEDFunctionError when it raised, VWEDNotFoundError when no script registers it."""
    async def call_async(self, name: str = ..., args: JSON = None, timeout: Optional[float] = None, **kw: Any) -> JSON: ...
    def list_all(self) -> List[Dict[str, Any]]: ...
    def clear_all(self) -> None: ...

class _Event:
    def listen(self, event_name: str = ..., handler: Optional[Callable[..., Any]] = None, priority: int = 1, **kw: Any) -> Any: ...
    def on(self, event_name: str, priority: int = 1) -> Callable[[_F], _F]: ...
    def emit(self, event_name: str = ..., data: JSON = None, **kw: Any) -> Coroutine[Any, Any, None]: ...
    def clear_all(self) -> None: ...

class _Timer:
    def interval(self, seconds: float, repeat: bool = True, delay: Optional[float] = None) -> Callable[[_F], _F]: ...
    def every(self, seconds: float) -> Callable[[_F], _F]: ...
    def once(self, delay: float = 0) -> Callable[[_F], _F]: ...
    def cron(self, expr: str) -> Callable[[_F], _F]: ...
    def schedule(self, interval: Optional[float] = None, handler: Optional[Callable[..., Any]] = None, repeat: bool = True, delay: Optional[float] = None, cron: Optional[str] = None) -> str: ...
    def delay(self, seconds: float = 0, handler: Optional[Callable[..., Any]] = None) -> str: ...
    def cancel(self, timer_id: str) -> bool: ...
    def clear_all(self) -> None: ...

class _Log:
    def info(self, *args: Any, **fields: Any) -> Coroutine[Any, Any, None]: ...
    def warning(self, *args: Any, **fields: Any) -> Coroutine[Any, Any, None]: ...
    def warn(self, *args: Any, **fields: Any) -> Coroutine[Any, Any, None]: ...
    def error(self, *args: Any, **fields: Any) -> Coroutine[Any, Any, None]: ...
    def debug(self, *args: Any, **fields: Any) -> Coroutine[Any, Any, None]: ...
    def sync_info(self, *args: Any, **fields: Any) -> None: ...
    def sync_warning(self, *args: Any, **fields: Any) -> None: ...
    def sync_error(self, *args: Any, **fields: Any) -> None: ...
    def sync_debug(self, *args: Any, **fields: Any) -> None: ...
    def flush(self, timeout: float = ...) -> Any:
        """Blocks until every line logged or printed so far is on disk. A ``timeout``
        that is not a finite number of seconds >= 0 raises VWEDArgumentError."""
    async def flush_async(self) -> Any: ...

class _Data:
    def set(self, key: str, value: JSON) -> None: ...
    def get(self, key: str, default: JSON = None) -> JSON: ...
    def has(self, key: str) -> bool: ...
    def delete(self, key: str) -> bool: ...
    def keys(self) -> List[str]: ...
    def clear(self) -> None: ...

class _Util:
    def now(self) -> str: ...
    def timestamp(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...
    def async_sleep(self, seconds: float) -> Awaitable[None]: ...
    def uuid(self) -> str: ...
    def scratch_dir(self) -> str:
        """The one folder this script may write (``<data-dir>/scratch/<project>``);
        also its working directory, ``HOME`` and ``TMPDIR``."""
        ...

class IoChange(Dict[str, Any]):
    """Data of the event ``io.<tag>``: tag, value, previous, quality ("good"/"bad"),
    timestamp (ISO-8601 UTC), ts_ms, error, seq."""

class _Io:
    def read(self, tag: str, detail: bool = False, live: bool = False) -> Any:
        """The point's value; raises VWEDTransportError when it has no good value,
        VWEDNotFoundError for an unknown tag. ``detail=True`` returns
        ``{tag, value, quality, error, last_change, last_read, writable}``."""
    async def read_async(self, tag: str, detail: bool = False, live: bool = False) -> Any: ...
    def write(self, tag: str, value: Union[bool, int, float]) -> None:
        """Writes a point; refused (VWEDPermissionError) for read-only points and input
        tables."""
    async def write_async(self, tag: str, value: Union[bool, int, float]) -> None: ...
    def points(self) -> List[Dict[str, Any]]: ...
    def on_change(self, tag: str, priority: int = 1) -> Callable[[_F], _F]:
        """Same as ``VWED.event.listen("io." + tag)``; the handler gets an IoChange."""

class _ModbusDevice:
    target: str
    def read_holding(self, address: int, count: int = 1, unit: Optional[int] = None) -> List[int]: ...
    def read_input(self, address: int, count: int = 1, unit: Optional[int] = None) -> List[int]: ...
    def read_coils(self, address: int, count: int = 1, unit: Optional[int] = None) -> List[bool]: ...
    def read_discrete(self, address: int, count: int = 1, unit: Optional[int] = None) -> List[bool]: ...
    def write_register(self, address: int, value: int, unit: Optional[int] = None) -> None: ...
    def write_registers(self, address: int, values: List[int], unit: Optional[int] = None) -> None: ...
    def write_coil(self, address: int, value: bool, unit: Optional[int] = None) -> None: ...
    def write_coils(self, address: int, values: List[bool], unit: Optional[int] = None) -> None: ...

class _SerialDevice:
    device: str
    def request(self, line: str, timeout: Optional[float] = None) -> Optional[str]: ...

class _Device:
    def modbus(
        self,
        device: Optional[str] = None,
        *,
        ip: Optional[str] = None,
        port: int = 502,
        register: Optional[int] = None,
        value: Optional[int] = None,
        unit: Optional[int] = None,
        slave_id: Optional[int] = None,
        count: int = 1,
    ) -> Any:
        """``modbus("press")`` → a _ModbusDevice (device or bus name from io_config).
        ``modbus(ip=, port=, register=, value=)`` writes (without value: reads) a holding
        register on the configured Modbus TCP bus with that address."""
    def serial(self, device: str) -> _SerialDevice: ...

class _Robot:
    def get_status(self, robot_id: str) -> Dict[str, Any]:
        """``{robot_id, description, online, quality, status: {name: value}, points, commands}``"""
    def get_all(self) -> List[Dict[str, Any]]: ...
    def dispatch(self, robot_id: str, task_id: Any = None, command: Optional[str] = None, value: Any = None) -> Dict[str, Any]: ...

TaskId = Union[str, int]

class _Task:
    """Task variables on this device (the store task blocks write), and the central
    task server at config ``task_server_url``."""
    def get_variables(self, task_id: TaskId) -> Dict[str, Any]: ...
    def set_variable(self, task_id: TaskId, name: str, value: JSON) -> None: ...
    def create(self, task_label: str, input_params: Optional[Dict[str, Any]] = None) -> Any:
        """POST {task_server_url}/api/tasks; the server's JSON answer."""
    def get_status(self, task_id: TaskId) -> Any:
        """GET {task_server_url}/api/tasks/{task_id}"""
    def stop(self, task_id: TaskId) -> Any:
        """POST {task_server_url}/api/tasks/{task_id}/stop"""
    def execute(self, task_id: TaskId, input_params: Optional[Dict[str, Any]] = None) -> Any:
        """POST {task_server_url}/api/tasks/{task_id}/execute"""
    async def create_task(self, task_label: str, input_params: Optional[Dict[str, Any]] = None) -> Any: ...
    async def execute_task(self, task_id: TaskId, input_params: Optional[Dict[str, Any]] = None) -> Any: ...
    async def get_task_status(self, task_id: TaskId) -> Any: ...
    async def stop_task(self, task_id: TaskId) -> Any: ...

class _Storage:
    def get_location(self, location_code: str) -> Optional[Dict[str, Any]]:
        """``{location_code, name, area, attributes, locked, locked_by, locked_at, updated_at}``,
        or None for an unknown code."""
    def list_locations(self, area: Optional[str] = None, locked: Optional[bool] = None, limit: int = 1000) -> List[Dict[str, Any]]: ...
    def lock_location(self, location_code: str, task_id: TaskId) -> bool:
        """Atomic: True when ``task_id`` holds the lock (now or already), False when
        another task does. Raises VWEDError for an unknown location."""
    def unlock_location(self, location_code: str, task_id: Optional[TaskId] = None, force: bool = False) -> bool:
        """True when a lock was released. Another task's lock is refused unless
        ``force``; without ``task_id`` any lock is released."""

class HttpResponse(Dict[str, Any]):
    """Keys (also attributes): status, headers (lowercase names), json (None unless
    the body is JSON), text, ok (2xx)."""
    status: int
    headers: Dict[str, str]
    json: Any
    text: str
    ok: bool

class _Http:
    """Only hosts in config ``http_allow_hosts`` (``host`` or ``host:port``); only
    http://; redirects are not followed; ``timeout`` in seconds, bounded by
    ``http_max_timeout_ms``; bodies above ``http_max_response_bytes`` fail."""
    def request(self, method: str, url: str, headers: Optional[Dict[str, str]] = None, json: Any = None, data: Union[str, bytes, Dict[str, Any], None] = None, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> HttpResponse: ...
    def get(self, url: str, headers: Optional[Dict[str, str]] = None, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> HttpResponse: ...
    def post(self, url: str, headers: Optional[Dict[str, str]] = None, json: Any = None, data: Union[str, bytes, Dict[str, Any], None] = None, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> HttpResponse: ...
    def put(self, url: str, headers: Optional[Dict[str, str]] = None, json: Any = None, data: Union[str, bytes, Dict[str, Any], None] = None, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> HttpResponse: ...
    def patch(self, url: str, headers: Optional[Dict[str, str]] = None, json: Any = None, data: Union[str, bytes, Dict[str, Any], None] = None, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> HttpResponse: ...
    def delete(self, url: str, headers: Optional[Dict[str, str]] = None, json: Any = None, data: Union[str, bytes, Dict[str, Any], None] = None, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> HttpResponse: ...
    async def request_async(self, method: str, url: str, headers: Optional[Dict[str, str]] = None, json: Any = None, data: Union[str, bytes, Dict[str, Any], None] = None, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> HttpResponse: ...
    async def get_async(self, url: str, headers: Optional[Dict[str, str]] = None, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> HttpResponse: ...
    async def post_async(self, url: str, headers: Optional[Dict[str, str]] = None, json: Any = None, data: Union[str, bytes, Dict[str, Any], None] = None, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> HttpResponse: ...

class _Mail:
    """SMTP from config (smtp_host, smtp_port, smtp_from, smtp_username, smtp_password)."""
    def send(self, to: Union[str, List[str]], subject: str = "", body: str = "") -> Dict[str, Any]: ...
    def send_with_attachment(self, to: Union[str, List[str]], subject: str = "", body: str = "", attachment_path: Optional[str] = None) -> Dict[str, Any]:
        """``attachment_path``: a file in ``attachment_dir()``, absolute or relative to it,
        at most ``mail_max_attachment_bytes``."""
    def attachment_dir(self) -> str:
        """``<data-dir>/attachments``: where scripts write files they want to mail."""

class _VWED:
    api: _Api
    function: _Function
    event: _Event
    timer: _Timer
    log: _Log
    data: _Data
    util: _Util
    io: _Io
    device: _Device
    robot: _Robot
    task: _Task
    storage: _Storage
    http: _Http
    mail: _Mail
    errors: _Errors
    Error: type[VWEDError]
    def get_script_id(self) -> str: ...

VWED: _VWED
