"""The Python half of a VWED Edge worker.

One worker process runs one script. This module builds the global ``VWED`` object,
loads the script, runs its ``boot()``, and then serves the supervisor's requests
(HTTP routes, function calls, events, timers) on one asyncio loop. Everything that
needs state or I/O is a request to the supervisor through the native ``_vwed`` module.
"""

import ast
import datetime as _dt
import gc
import importlib.abc
import importlib.util
import inspect
import json
import linecache
import os
import sys
import threading
import time
import traceback
import uuid as _uuid
import warnings

import _vwed


def _import_asyncio_lazy_ssl():
    """asyncio imports ssl eagerly, and ssl maps libcrypto: about 5 MB per worker
    that most scripts never use. Import asyncio as if ssl were absent, then hand it
    the real module the moment anything imports ssl."""
    saved = sys.modules.get("ssl")
    had = "ssl" in sys.modules
    sys.modules["ssl"] = None
    try:
        import asyncio as aio
    finally:
        if had:
            sys.modules["ssl"] = saved
        else:
            del sys.modules["ssl"]
    if saved is not None:
        return aio

    def give_asyncio(ssl):
        from asyncio import base_events, selector_events, sslproto

        for m in (base_events, selector_events, sslproto):
            m.ssl = ssl
        sslproto.SSLAgainErrors = (ssl.SSLWantReadError, ssl.SSLSyscallError)

    class SslLoader(importlib.abc.Loader):
        def __init__(self, real):
            self._real = real

        def create_module(self, spec):
            return self._real.create_module(spec)

        def exec_module(self, module):
            self._real.exec_module(module)
            give_asyncio(module)

    class SslFinder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "ssl":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec("ssl")
            if spec is not None and spec.loader is not None:
                spec.loader = SslLoader(spec.loader)
            return spec

    sys.meta_path.insert(0, SslFinder())
    return aio


asyncio = _import_asyncio_lazy_ssl()

# --------------------------------------------------------------------------- state

_script_id = ""
_script_path = ""
_loop = None
_main_thread = threading.get_ident()
_handlers = []  # handler id -> callable
_arity = []  # handler id -> number of positional parameters it takes
_kinds = {}  # handler id -> registration kind, for clear_all()
_local_functions = {}  # function name -> handler id, for calls within this script
_tasks = {}  # supervisor request id -> asyncio.Task, so a timeout can cancel it
_futures = {}  # our request id -> Future waiting for the supervisor's reply
_flush_pending = False

DEFAULT_CALL_TIMEOUT = 30.0


class VWEDError(Exception):
    """A VWED call the runtime refused or could not complete."""


# ------------------------------------------------------------- awaitable results


async def _vwed_completed(value=None):
    return value


# VWED.log.info(...) and VWED.event.emit(...) act at call time and hand back a
# coroutine that is already done, so `await`, no `await` and asyncio.create_task()
# all work. Not awaiting it is normal here, not a bug worth a warning.
warnings.filterwarnings(
    "ignore",
    message=r"coroutine '_vwed_completed' was never awaited",
    category=RuntimeWarning,
)


def _schedule_flush():
    global _flush_pending
    if _flush_pending or _loop is None:
        return
    _flush_pending = True
    if threading.get_ident() == _main_thread:
        _loop.call_soon(_flush_now)
    else:
        _loop.call_soon_threadsafe(_flush_now)


def _flush_now():
    global _flush_pending
    _flush_pending = False
    _vwed.flush()


# ------------------------------------------------------------- stdout / stderr


class _Output:
    """Sends whole lines of print() output and tracebacks to the supervisor."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, stream):
        self._stream = stream
        self._buf = ""
        self._lock = threading.Lock()

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        with self._lock:
            self._buf += s
            if "\n" in self._buf:
                lines, _, self._buf = self._buf.rpartition("\n")
                _vwed.output(self._stream, lines)
                _schedule_flush()
        return len(s)

    def flush(self):
        with self._lock:
            if self._buf:
                _vwed.output(self._stream, self._buf)
                self._buf = ""
        _schedule_flush()

    def isatty(self):
        return False

    def writable(self):
        return True


def _print_exception(exc):
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(text)
    sys.stderr.flush()
    return text


def _error_text(exc):
    msg = str(exc)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# --------------------------------------------------------------- call plumbing


def _positional_params(fn):
    """How a callable takes arguments: (number of named parameters, whether that one
    parameter can take a dict positionally, has **kwargs)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1, True, False
    named = 0
    positional = 0
    var_kw = False
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            named += 1
            positional += 1
        elif p.kind == p.KEYWORD_ONLY:
            named += 1
        elif p.kind == p.VAR_KEYWORD:
            var_kw = True
        elif p.kind == p.VAR_POSITIONAL:
            positional += 1
    return named, positional >= 1, var_kw


def _add_handler(fn, kind):
    if isinstance(fn, _Undefined):
        print(f"警告: 注册的处理函数 {fn!r} 未定义, 调用时将报 NameError", file=sys.stderr)
    elif not callable(fn):
        raise VWEDError(f"handler must be callable, got {type(fn).__name__}")
    hid = len(_handlers)
    _handlers.append(fn)
    _arity.append((1, True, False) if isinstance(fn, _Undefined) else _positional_params(fn))
    _kinds[hid] = kind
    return hid


def _parse_string_args(s):
    """A string argument is JSON or a Python literal; it is never evaluated."""
    text = s.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return s


def _call_with_args(hid, args):
    """The argument rules of a function call: a dict is one argument when the
    function takes exactly one parameter, else keyword arguments; a list is
    positional arguments; a string is parsed as JSON or a Python literal first."""
    fn = _handlers[hid]
    named, takes_positional, var_kw = _arity[hid]
    if isinstance(args, str):
        args = _parse_string_args(args)
    if isinstance(args, dict):
        if named == 1 and takes_positional and not var_kw:
            return fn(args)
        return fn(**args)
    if isinstance(args, (list, tuple)):
        return fn(*args)
    if args is None:
        if named >= 1 and takes_positional:
            return fn({})
        return fn()
    return fn(args)


def _call_handler(hid, arg):
    """Route, event and timer handlers take the request/event data, or nothing."""
    fn = _handlers[hid]
    named, takes_positional, _ = _arity[hid]
    if takes_positional:
        return fn(arg)
    return fn()


def _reply_route(req, result):
    status, headers, body, raw = 200, [], result, False
    if isinstance(result, Response):
        status, body = result.status, result.body
        headers = [(str(k), str(v)) for k, v in (result.headers or {}).items()]
        ctype = next((v for k, v in headers if k.lower() == "content-type"), None)
        raw = isinstance(body, (bytes, bytearray)) or (
            isinstance(body, str) and ctype is not None and "json" not in ctype.lower()
        )
    try:
        _vwed.route_reply(req, status, headers, body, raw)
    except TypeError as e:
        _print_exception(e)
        _vwed.route_reply(
            req, 500, [], {"success": False, "error": f"返回值无法序列化为JSON: {e}"}, False
        )


def _route_failed(req, exc):
    _print_exception(exc)
    _vwed.route_reply(
        req,
        500,
        [],
        {"success": False, "error": f"脚本接口执行失败: {_error_text(exc)}", "script_id": _script_id},
        False,
    )


def _reply_call(req, value):
    try:
        _vwed.call_reply(req, True, value)
    except TypeError as e:
        _vwed.call_reply(req, False, f"返回值无法序列化为JSON: {e}")


def _run_task(req, coro, on_ok, on_err):
    async def runner():
        try:
            value = await coro
        except asyncio.CancelledError:
            return
        except BaseException as e:  # noqa: BLE001 - a script error must never kill the worker
            on_err(e)
        else:
            on_ok(value)
        finally:
            _tasks.pop(req, None)
            _schedule_flush()

    _tasks[req] = _loop.create_task(runner())


# ------------------------------------------------------------------ dispatching


def _answer(req, invoke, on_ok, on_err):
    """Runs a handler for request `req`; a coroutine result becomes a task that
    answers when it finishes (and that a timeout can cancel)."""
    try:
        result = invoke()
    except BaseException as e:  # noqa: BLE001 - a script error must never kill the worker
        on_err(req, e)
        return
    if inspect.isawaitable(result):
        _run_task(req, result, lambda v: on_ok(req, v), lambda e: on_err(req, e))
    else:
        on_ok(req, result)


def _on_route(req, hid, data):
    _answer(req, lambda: _call_handler(hid, data), _reply_route, _route_failed)


def _call_failed(req, exc):
    _print_exception(exc)
    _vwed.call_reply(req, False, _error_text(exc))


def _on_call(req, hid, args):
    _answer(req, lambda: _call_with_args(hid, args), _reply_call, _call_failed)


def _on_event(req, hids, name, data):
    """Listeners of one event run in the given (priority) order; one that raises does
    not stop the others."""

    async def run_async(rest, errors):
        for hid in rest:
            try:
                r = _call_handler(hid, data)
                if inspect.isawaitable(r):
                    await r
            except Exception as e:  # noqa: BLE001
                _print_exception(e)
                errors.append(_error_text(e))
        return errors

    errors = []
    for i, hid in enumerate(hids):
        try:
            r = _call_handler(hid, data)
        except Exception as e:  # noqa: BLE001
            _print_exception(e)
            errors.append(_error_text(e))
            continue
        if inspect.isawaitable(r):

            async def chain(first=r, rest=hids[i + 1 :]):
                try:
                    await first
                except Exception as e:  # noqa: BLE001
                    _print_exception(e)
                    errors.append(_error_text(e))
                return await run_async(rest, errors)

            _run_task(
                req,
                chain(),
                lambda errs: _vwed.done(req, "; ".join(errs) or None),
                lambda e: _vwed.done(req, _error_text(e)),
            )
            return
    _vwed.done(req, "; ".join(errors) or None)


def _on_timer(req, hid):
    try:
        r = _call_handler(hid, None)
    except Exception as e:  # noqa: BLE001
        _print_exception(e)
        _vwed.done(req, _error_text(e))
        return
    if inspect.isawaitable(r):

        def failed(e):
            _print_exception(e)
            _vwed.done(req, _error_text(e))

        _run_task(req, r, lambda _v: _vwed.done(req, None), failed)
    else:
        _vwed.done(req, None)


def _on_reply(req, ok, value):
    fut = _futures.pop(req, None)
    if fut is None or fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(VWEDError(value))


def _shutdown():
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        _vwed.exit(0)


def _dispatch(msg):
    kind = msg[0]
    if kind == "route":
        _on_route(msg[1], msg[2], msg[3])
    elif kind == "call":
        _on_call(msg[1], msg[2], msg[3])
    elif kind == "event":
        _on_event(msg[1], msg[2], msg[3], msg[4])
    elif kind == "timer":
        _on_timer(msg[1], msg[2])
    elif kind == "reply":
        _on_reply(msg[1], msg[2], msg[3])
    elif kind == "cancel":
        task = _tasks.pop(msg[1], None)
        if task is not None:
            task.cancel()
    elif kind == "ping":
        _vwed.done(msg[1], None)
    elif kind == "boot":
        _boot(*msg[1:])
    elif kind in ("stop", "eof"):
        _shutdown()


def _on_readable():
    for msg in _vwed.recv():
        _dispatch(msg)
    # A synchronous VWED call inside a handler may have parked messages that the
    # socket will not announce again.
    if _vwed.pending():
        _loop.call_soon(_on_readable)
    _vwed.flush()


async def _request_async(service, args):
    req = _vwed.request_nowait(service, args)
    fut = _loop.create_future()
    _futures[req] = fut
    _schedule_flush()
    return await fut


# -------------------------------------------------------------------- VWED.api


class Response:
    """A handler's answer with its own status and headers."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, status=200, body=None, headers=None):
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise VWEDError(f"HTTP status must be an int between 100 and 599, got {status!r}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class _Headers(dict):
    """Request headers; names are case-insensitive, as in HTTP."""

    __slots__ = ()

    def __getitem__(self, key):
        return dict.__getitem__(self, key.lower() if isinstance(key, str) else key)

    def get(self, key, default=None):
        return dict.get(self, key.lower() if isinstance(key, str) else key, default)

    def __contains__(self, key):
        return dict.__contains__(self, key.lower() if isinstance(key, str) else key)


_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def _route_path(path):
    if not isinstance(path, str) or not path:
        raise VWEDError("route path must be a non-empty string such as '/hello'")
    if not path.startswith("/"):
        path = "/" + path
    # The seed's examples sometimes spell the public prefix out; it is implied.
    if path == "/script-api" or path.startswith("/script-api/"):
        path = path[len("/script-api") :] or "/"
    return path


class _Api:
    def register_route(self, path=None, method="GET", handler=None, description="", **_ignored):
        if handler is None:
            raise VWEDError("register_route needs handler=")
        method = str(method).upper()
        if method not in _METHODS:
            raise VWEDError(f"unsupported HTTP method {method}; use one of {', '.join(_METHODS)}")
        path = _route_path(path)
        hid = _add_handler(handler, "route")
        try:
            _vwed.register_route(hid, method, path, str(description or ""))
        except RuntimeError as e:
            raise VWEDError(str(e)) from None
        return handler

    def register(self, path, method="GET", description="", **kw):
        def deco(fn):
            self.register_route(path=path, method=method, handler=fn, description=description, **kw)
            return fn

        return deco

    def get(self, path, description="", **kw):
        return self.register(path, "GET", description, **kw)

    def post(self, path, description="", **kw):
        return self.register(path, "POST", description, **kw)

    def put(self, path, description="", **kw):
        return self.register(path, "PUT", description, **kw)

    def delete(self, path, description="", **kw):
        return self.register(path, "DELETE", description, **kw)

    def patch(self, path, description="", **kw):
        return self.register(path, "PATCH", description, **kw)

    def response(self, status=200, body=None, headers=None):
        return Response(status, body, headers)

    def clear_all(self):
        _clear_kind("route")


def _clear_kind(kind):
    for hid, k in list(_kinds.items()):
        if k == kind:
            _vwed.unregister(kind, hid)
            del _kinds[hid]
            if kind == "function":
                for name, h in list(_local_functions.items()):
                    if h == hid:
                        del _local_functions[name]
    _schedule_flush()


# --------------------------------------------------------------- VWED.function


def _normalise_parameters(parameters, params):
    if parameters is not None:
        if not isinstance(parameters, (list, tuple)):
            raise VWEDError("parameters must be a list of {'name': ..., 'type': ...} dicts")
        return [dict(p) if isinstance(p, dict) else {"name": str(p)} for p in parameters]
    if params is not None:
        return [{"name": str(p)} for p in params]
    return []


class _Function:
    def register(
        self,
        name=None,
        handler=None,
        description="",
        parameters=None,
        return_schema=None,
        tags=None,
        params=None,
        **_ignored,
    ):
        # Bare decorator: @VWED.function.register
        if callable(name) and handler is None:
            return self.register(name=name.__name__, handler=name)
        # Decorator form: @VWED.function.register("name", description=...)
        if handler is None:

            def deco(fn):
                self.register(
                    name=name or fn.__name__,
                    handler=fn,
                    description=description,
                    parameters=parameters,
                    return_schema=return_schema,
                    tags=tags,
                    params=params,
                )
                return fn

            return deco
        name = str(name or getattr(handler, "__name__", ""))
        if not name:
            raise VWEDError("function name must not be empty")
        # The seed's positional form register(name, handler, description).
        if isinstance(description, (list, tuple)) and params is None:
            description, params = "", description
        hid = _add_handler(handler, "function")
        is_async = inspect.iscoroutinefunction(handler)
        try:
            _vwed.register_function(
                hid,
                name,
                str(description or ""),
                _normalise_parameters(parameters, params),
                return_schema,
                [str(t) for t in (tags or [])],
                is_async,
            )
        except RuntimeError as e:
            raise VWEDError(str(e)) from None
        _local_functions[name] = hid
        return handler

    def call(self, name=None, args=None, timeout=None, **kw):
        """Calls a registered function of any running script and returns its result."""
        if args is None and kw:
            args = kw
        hid = _local_functions.get(name)
        if hid is not None:
            if inspect.iscoroutinefunction(_handlers[hid]):
                raise VWEDError(
                    f"函数 {name} 是异步函数, 请使用 await VWED.function.call_async(...)"
                )
            return _call_with_args(hid, args)
        t = float(timeout) if timeout is not None else DEFAULT_CALL_TIMEOUT
        payload = {"name": name, "args": args, "timeout_ms": int(t * 1000)}
        try:
            return _vwed.request("function.call", payload, t + 5.0)
        except RuntimeError as e:
            raise VWEDError(str(e)) from None

    async def call_async(self, name=None, args=None, timeout=None, **kw):
        if args is None and kw:
            args = kw
        hid = _local_functions.get(name)
        if hid is not None:
            r = _call_with_args(hid, args)
            return (await r) if inspect.isawaitable(r) else r
        t = float(timeout) if timeout is not None else DEFAULT_CALL_TIMEOUT
        return await _request_async("function.call", {"name": name, "args": args, "timeout_ms": int(t * 1000)})

    def list_all(self):
        return _vwed.request("function.list", None, DEFAULT_CALL_TIMEOUT)

    def clear_all(self):
        _clear_kind("function")


# ------------------------------------------------------------------ VWED.event


class _Event:
    def listen(self, event_name=None, handler=None, priority=1, **_ignored):
        if handler is None:

            def deco(fn):
                self.listen(event_name=event_name, handler=fn, priority=priority)
                return fn

            return deco
        if not isinstance(event_name, str) or not event_name:
            raise VWEDError("event name must be a non-empty string")
        hid = _add_handler(handler, "listener")
        try:
            _vwed.register_listener(hid, event_name, int(priority))
        except RuntimeError as e:
            raise VWEDError(str(e)) from None
        return handler

    def on(self, event_name, priority=1):
        return self.listen(event_name, priority=priority)

    def emit(self, event_name=None, data=None, **_ignored):
        if not isinstance(event_name, str) or not event_name:
            raise VWEDError("event name must be a non-empty string")
        _vwed.notify("event.emit", {"name": event_name, "data": data})
        _schedule_flush()
        return _vwed_completed()

    def clear_all(self):
        _clear_kind("listener")


# ------------------------------------------------------------------ VWED.timer


def _seconds(value, what):
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise VWEDError(f"{what} must be a number of seconds, got {value!r}") from None
    if s < 0 or s != s:
        raise VWEDError(f"{what} must be zero or more seconds, got {value!r}")
    return s


class _Timer:
    def _add(self, handler, interval, delay, repeat, cron=None):
        hid = _add_handler(handler, "timer")
        name = getattr(handler, "__name__", "timer")
        try:
            _vwed.register_timer(
                hid, name, int(interval * 1000), int(delay * 1000), bool(repeat), cron
            )
        except RuntimeError as e:
            raise VWEDError(str(e)) from None
        return f"timer_{hid}"

    def interval(self, seconds, repeat=True, delay=None):
        """Runs every `seconds`; the first run comes after `delay` seconds, or after one
        interval when no delay is given."""
        every = _seconds(seconds, "interval")
        if repeat and every <= 0:
            raise VWEDError("a repeating interval must be more than 0 seconds")
        first = every if delay is None else _seconds(delay, "delay")

        def deco(fn):
            self._add(fn, every, first, repeat)
            return fn

        return deco

    def every(self, seconds):
        return self.interval(seconds)

    def once(self, delay=0):
        first = _seconds(delay, "delay")

        def deco(fn):
            self._add(fn, 0, first, False)
            return fn

        return deco

    def cron(self, expr):
        if not isinstance(expr, str) or not expr.strip():
            raise VWEDError("cron expression must be a non-empty string such as '*/5 * * * *'")

        def deco(fn):
            self._add(fn, 0, 0, True, expr.strip())
            return fn

        return deco

    def schedule(self, interval=None, handler=None, repeat=True, delay=None, cron=None):
        if handler is None:
            raise VWEDError("schedule needs handler=")
        if cron is not None:
            return self._add(handler, 0, 0, True, str(cron))
        every = _seconds(interval, "interval")
        if repeat and every <= 0:
            raise VWEDError("a repeating interval must be more than 0 seconds")
        first = every if delay is None else _seconds(delay, "delay")
        return self._add(handler, every, first, repeat)

    def delay(self, seconds=0, handler=None):
        if handler is None:
            raise VWEDError("delay needs handler=")
        return self._add(handler, 0, _seconds(seconds, "delay"), False)

    def cancel(self, timer_id):
        try:
            hid = int(str(timer_id).rsplit("_", 1)[-1])
        except ValueError:
            raise VWEDError(f"unknown timer id {timer_id!r}") from None
        if _kinds.get(hid) != "timer":
            raise VWEDError(f"unknown timer id {timer_id!r}")
        _vwed.unregister("timer", hid)
        del _kinds[hid]
        _schedule_flush()
        return True

    def clear_all(self):
        _clear_kind("timer")


# -------------------------------------------------------------------- VWED.log


class _Log:
    """VWED.log.info("text", **fields), VWED.log.info("tag", "text") and
    VWED.log.info(tag=..., message=...) all log at call time. The async names return an
    already-finished awaitable so that `await` is optional."""

    def _write(self, level, args, fields):
        tag = fields.pop("tag", None)
        message = fields.pop("message", None)
        args = list(args)
        if message is None and len(args) >= 2 and tag is None:
            tag, message = args[0], args[1]
            args = args[2:]
        elif message is None and args:
            message = args.pop(0)
        if args:
            message = " ".join(str(a) for a in [message, *args])
        if tag is not None:
            fields["tag"] = str(tag)
        _vwed.log(level, "" if message is None else str(message), fields)
        _schedule_flush()

    def info(self, *args, **fields):
        self._write("INFO", args, fields)
        return _vwed_completed()

    def warning(self, *args, **fields):
        self._write("WARNING", args, fields)
        return _vwed_completed()

    warn = warning

    def error(self, *args, **fields):
        self._write("ERROR", args, fields)
        return _vwed_completed()

    def debug(self, *args, **fields):
        self._write("DEBUG", args, fields)
        return _vwed_completed()

    def sync_info(self, *args, **fields):
        self._write("INFO", args, fields)

    def sync_warning(self, *args, **fields):
        self._write("WARNING", args, fields)

    def sync_error(self, *args, **fields):
        self._write("ERROR", args, fields)

    def sync_debug(self, *args, **fields):
        self._write("DEBUG", args, fields)

    def flush(self, timeout=DEFAULT_CALL_TIMEOUT):
        """Returns once every line logged or printed so far is on disk."""
        sys.stdout.flush()
        sys.stderr.flush()
        return _vwed.request("log.flush", None, timeout)

    async def flush_async(self):
        sys.stdout.flush()
        sys.stderr.flush()
        return await _request_async("log.flush", None)


# ------------------------------------------------------------------- VWED.data


_MISSING = object()


class _Data:
    """Key/value data of this script, kept by the runtime across restarts."""

    def set(self, key, value):
        _vwed.request("data.set", {"key": str(key), "value": value}, DEFAULT_CALL_TIMEOUT)

    def get(self, key, default=None):
        r = _vwed.request("data.get", {"key": str(key)}, DEFAULT_CALL_TIMEOUT)
        return r["value"] if r.get("found") else default

    def has(self, key):
        return bool(_vwed.request("data.has", {"key": str(key)}, DEFAULT_CALL_TIMEOUT))

    def delete(self, key):
        return bool(_vwed.request("data.delete", {"key": str(key)}, DEFAULT_CALL_TIMEOUT))

    def keys(self):
        return list(_vwed.request("data.keys", None, DEFAULT_CALL_TIMEOUT))

    def clear(self):
        _vwed.request("data.clear", None, DEFAULT_CALL_TIMEOUT)


# ------------------------------------------------------------------- VWED.util


class _Util:
    def now(self):
        return _dt.datetime.now().isoformat()

    def timestamp(self):
        return time.time()

    def sleep(self, seconds):
        time.sleep(seconds)

    def async_sleep(self, seconds):
        return asyncio.sleep(seconds)

    def uuid(self):
        return str(_uuid.uuid4())

    def scratch_dir(self):
        return _vwed.scratch_dir()


# ------------------------------------------------------------------------ VWED


class _VWED:
    def __init__(self):
        self.api = _Api()
        self.function = _Function()
        self.event = _Event()
        self.timer = _Timer()
        self.log = _Log()
        self.data = _Data()
        self.util = _Util()
        self.Error = VWEDError

    def get_script_id(self):
        return _script_id

    def __repr__(self):
        return f"<VWED script_id={_script_id!r}>"


VWED = _VWED()


def _extend(name, obj):
    """Lets other modules of the runtime add `VWED.<name>`."""
    setattr(VWED, name, obj)


# ------------------------------------------------- VWED.io / VWED.device / VWED.robot
# Points, devices and robots come from the runtime's device config (io_config).
# The supervisor owns every bus; these calls are requests to it.


def _io_request(service, args, timeout=DEFAULT_CALL_TIMEOUT):
    try:
        return _vwed.request(service, args, timeout)
    except RuntimeError as e:
        raise VWEDError(str(e)) from None


class _Io:
    """Named I/O points. A change of a point is the event ``io.<tag>``."""

    def read(self, tag, detail=False, live=False):
        """The point's value (raises VWEDError if it has no good value).

        ``detail=True`` returns ``{tag, value, quality, error, last_change, ...}``
        instead, also for a bad point; ``live=True`` reads the device now.
        """
        r = _io_request("io.read", {"tag": str(tag), "detail": bool(detail), "live": bool(live)})
        return r if detail else r.get("value")

    async def read_async(self, tag, detail=False, live=False):
        r = await _request_async("io.read", {"tag": str(tag), "detail": bool(detail), "live": bool(live)})
        return r if detail else r.get("value")

    def write(self, tag, value):
        """Writes a point; refused for read-only points. Logged with this script's id."""
        _io_request("io.write", {"tag": str(tag), "value": value})

    async def write_async(self, tag, value):
        await _request_async("io.write", {"tag": str(tag), "value": value})

    def points(self):
        return _io_request("io.points", None)

    def on_change(self, tag, priority=1):
        """Decorator: ``handler(change)`` runs on every change of the point's value
        (beyond its deadband) or quality; ``change`` is
        ``{tag, value, previous, quality, timestamp, ts_ms, error, seq}``."""
        if not isinstance(tag, str) or not tag:
            raise VWEDError("tag must be a non-empty string")
        return VWED.event.listen("io." + tag, priority=priority)


class _ModbusDevice:
    """Raw Modbus access to a configured device (or a bus, with ``unit=``)."""

    def __init__(self, target):
        self.target = target

    def _call(self, op, args):
        args["target"] = self.target
        return _io_request("device.modbus." + op, args)

    def read_holding(self, address, count=1, unit=None):
        return self._call("read_holding", {"address": int(address), "count": int(count), "unit": unit})

    def read_input(self, address, count=1, unit=None):
        return self._call("read_input", {"address": int(address), "count": int(count), "unit": unit})

    def read_coils(self, address, count=1, unit=None):
        return self._call("read_coils", {"address": int(address), "count": int(count), "unit": unit})

    def read_discrete(self, address, count=1, unit=None):
        return self._call("read_discrete", {"address": int(address), "count": int(count), "unit": unit})

    def write_register(self, address, value, unit=None):
        self._call("write_register", {"address": int(address), "value": value, "unit": unit})

    def write_registers(self, address, values, unit=None):
        self._call("write_registers", {"address": int(address), "values": list(values), "unit": unit})

    def write_coil(self, address, value, unit=None):
        self._call("write_coil", {"address": int(address), "value": bool(value), "unit": unit})

    def write_coils(self, address, values, unit=None):
        self._call("write_coils", {"address": int(address), "values": [bool(v) for v in values], "unit": unit})

    def __repr__(self):
        return f"<VWED modbus device {self.target!r}>"


class _SerialDevice:
    def __init__(self, device):
        self.device = device

    def request(self, line, timeout=None):
        """Sends one line and returns the reply line."""
        args = {"device": self.device, "line": str(line)}
        wait = DEFAULT_CALL_TIMEOUT
        if timeout is not None:
            args["timeout_ms"] = max(1, int(float(timeout) * 1000))
            wait = float(timeout) + 5.0
        return _io_request("device.serial.request", args, wait)


class _Device:
    def modbus(self, device=None, *, ip=None, port=502, register=None, value=None, unit=None, slave_id=None, count=1, **_ignored):
        """``modbus("press")`` gives the device (or bus) object. The one-shot form
        ``modbus(ip=, port=, register=, value=)`` writes (or, without value, reads)
        a holding register on the configured Modbus TCP bus at that address."""
        if device is not None:
            return _ModbusDevice(str(device))
        if ip is None or register is None:
            raise VWEDError("VWED.device.modbus() needs a device or bus name, or ip= and register=")
        args = {
            "ip": str(ip),
            "port": int(port),
            "register": int(register),
            "unit": unit if unit is not None else slave_id,
            "count": int(count),
        }
        if value is not None:
            args["value"] = value
        return _io_request("device.modbus.oneshot", args)

    def serial(self, device):
        return _SerialDevice(str(device))


class _Robot:
    """Robots of the device config: status points plus command points."""

    def get_status(self, robot_id):
        return _io_request("robot.get_status", {"robot_id": str(robot_id)})

    def get_all(self):
        return _io_request("robot.get_all", None)

    def dispatch(self, robot_id, task_id=None, command=None, value=None):
        """Writes ``value`` (or ``task_id``) to the robot's command point ``command``
        (optional when the robot has one command)."""
        return _io_request(
            "robot.dispatch",
            {"robot_id": str(robot_id), "task_id": task_id, "command": command, "value": value},
        )


_extend("io", _Io())
_extend("device", _Device())
_extend("robot", _Robot())


# ------------------------------------- VWED.task / VWED.storage / VWED.http / VWED.mail

# The supervisor bounds these calls with its own timeouts (task_server_timeout_ms,
# http_max_timeout_ms, smtp_timeout_ms) and always answers; this wait only guards
# against a supervisor that is gone.
_SERVICE_WAIT = 630.0


def _service(service, args, wait=DEFAULT_CALL_TIMEOUT):
    try:
        return _vwed.request(service, args, wait)
    except RuntimeError as e:
        raise VWEDError(str(e)) from None


def _task_id(task_id):
    if isinstance(task_id, bool) or not isinstance(task_id, (str, int)):
        raise VWEDError(f"task_id must be a string or an int, got {task_id!r}")
    return task_id


class _Task:
    """Task variables kept on this device, and the central task server
    (config task_server_url)."""

    def get_variables(self, task_id):
        return _service("task.get_variables", {"task_id": _task_id(task_id)})

    def set_variable(self, task_id, name, value):
        _service(
            "task.set_variable", {"task_id": _task_id(task_id), "name": str(name), "value": value}
        )

    def create(self, task_label, input_params=None):
        args = {"task_label": str(task_label), "input_params": input_params or {}}
        return _service("task.create", args, _SERVICE_WAIT)

    def get_status(self, task_id):
        return _service("task.get_status", {"task_id": _task_id(task_id)}, _SERVICE_WAIT)

    def stop(self, task_id):
        return _service("task.stop", {"task_id": _task_id(task_id)}, _SERVICE_WAIT)

    def execute(self, task_id, input_params=None):
        args = {"task_id": _task_id(task_id), "input_params": input_params or {}}
        return _service("task.execute", args, _SERVICE_WAIT)

    # The async names of seed 001 §5.7.
    async def create_task(self, task_label, input_params=None):
        args = {"task_label": str(task_label), "input_params": input_params or {}}
        return await _request_async("task.create", args)

    async def execute_task(self, task_id, input_params=None):
        args = {"task_id": _task_id(task_id), "input_params": input_params or {}}
        return await _request_async("task.execute", args)

    async def get_task_status(self, task_id):
        return await _request_async("task.get_status", {"task_id": _task_id(task_id)})

    async def stop_task(self, task_id):
        return await _request_async("task.stop", {"task_id": _task_id(task_id)})


class _Storage:
    """Warehouse locations, seeded through POST /api/script/storage/locations."""

    def get_location(self, location_code):
        return _service("storage.get_location", {"location_code": str(location_code)})

    def list_locations(self, area=None, locked=None, limit=1000):
        args = {"area": area, "locked": locked, "limit": int(limit)}
        return _service("storage.list_locations", args)

    def lock_location(self, location_code, task_id):
        """True when ``task_id`` holds the lock now (also when it already did), False
        when another task holds it."""
        args = {"location_code": str(location_code), "task_id": _task_id(task_id)}
        return bool(_service("storage.lock_location", args))

    def unlock_location(self, location_code, task_id=None, force=False):
        """True when a lock was released. A ``task_id`` other than the holder's is
        refused unless ``force``; without ``task_id`` any lock is released."""
        args = {"location_code": str(location_code), "force": bool(force)}
        if task_id is not None:
            args["task_id"] = _task_id(task_id)
        return bool(_service("storage.unlock_location", args))


class HttpResponse(dict):
    """``{status, headers, json, text, ok}``; the keys also read as attributes."""

    __slots__ = ()

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _http_args(method, url, headers, json_body, data, params, timeout):
    args = {"method": method, "url": str(url)}
    if headers:
        args["headers"] = {str(k): str(v) for k, v in dict(headers).items()}
    if json_body is not None:
        args["json"] = json_body
    if data is not None:
        if isinstance(data, (bytes, bytearray)):
            data = bytes(data).decode("utf-8")
        args["data"] = data
    if params:
        args["params"] = dict(params)
    if timeout is not None:
        args["timeout"] = float(timeout)
    return args


class _Http:
    """Outgoing HTTP through the runtime, to hosts listed in config http_allow_hosts.
    ``timeout`` is in seconds."""

    def request(self, method, url, headers=None, json=None, data=None, params=None, timeout=None):
        args = _http_args(method, url, headers, json, data, params, timeout)
        return HttpResponse(_service("http.request", args, _SERVICE_WAIT))

    def get(self, url, headers=None, params=None, timeout=None, **kw):
        return self.request("GET", url, headers=headers, params=params, timeout=timeout, **kw)

    def post(self, url, headers=None, json=None, data=None, params=None, timeout=None):
        return self.request("POST", url, headers, json, data, params, timeout)

    def put(self, url, headers=None, json=None, data=None, params=None, timeout=None):
        return self.request("PUT", url, headers, json, data, params, timeout)

    def patch(self, url, headers=None, json=None, data=None, params=None, timeout=None):
        return self.request("PATCH", url, headers, json, data, params, timeout)

    def delete(self, url, headers=None, json=None, data=None, params=None, timeout=None):
        return self.request("DELETE", url, headers, json, data, params, timeout)

    async def request_async(
        self, method, url, headers=None, json=None, data=None, params=None, timeout=None
    ):
        args = _http_args(method, url, headers, json, data, params, timeout)
        return HttpResponse(await _request_async("http.request", args))

    async def get_async(self, url, headers=None, params=None, timeout=None):
        return await self.request_async("GET", url, headers=headers, params=params, timeout=timeout)

    async def post_async(self, url, headers=None, json=None, data=None, params=None, timeout=None):
        return await self.request_async("POST", url, headers, json, data, params, timeout)


class _Mail:
    """Mail through the SMTP server in config (smtp_host, smtp_port, smtp_from, ...)."""

    def send(self, to, subject="", body=""):
        args = {"to": to if isinstance(to, str) else list(to), "subject": str(subject), "body": str(body)}
        return _service("mail.send", args, _SERVICE_WAIT)

    def send_with_attachment(self, to, subject="", body="", attachment_path=None):
        """``attachment_path`` is a file in ``attachment_dir()`` (absolute, or relative
        to that directory)."""
        if attachment_path is None:
            raise VWEDError("send_with_attachment needs attachment_path=")
        args = {
            "to": to if isinstance(to, str) else list(to),
            "subject": str(subject),
            "body": str(body),
            "attachment_path": str(attachment_path),
        }
        return _service("mail.send", args, _SERVICE_WAIT)

    def attachment_dir(self):
        """The directory (``<data-dir>/attachments``) attachments must be in."""
        return _service("mail.attachment_dir", None)


_extend("task", _Task())
_extend("storage", _Storage())
_extend("http", _Http())
_extend("mail", _Mail())


# ------------------------------------------------------------------------ boot


class _Undefined:
    """What an undefined global name evaluates to in a script: it raises the usual
    NameError as soon as it is used (called, tested, printed, looked into), but it
    can be passed along first. The seed's template registers handlers it never
    defines; boot() succeeds and only a call to such a handler fails."""

    __slots__ = ("_name",)

    def __init__(self, name):
        object.__setattr__(self, "_name", name)

    def _fail(self, *_a, **_k):
        raise NameError(f"name '{object.__getattribute__(self, '_name')}' is not defined")

    __call__ = __bool__ = __str__ = __iter__ = __len__ = __int__ = __float__ = _fail
    __getitem__ = __add__ = __sub__ = __mul__ = __truediv__ = __lt__ = __gt__ = _fail
    __le__ = __ge__ = __contains__ = __hash__ = __index__ = __await__ = _fail

    def __getattr__(self, attr):
        # Introspection (inspect, copy, pickle) probes dunder names with hasattr().
        if attr.startswith("_"):
            raise AttributeError(attr)
        self._fail()

    def __repr__(self):
        return f"<undefined name {object.__getattribute__(self, '_name')!r}>"


class _ScriptGlobals(dict):
    """A script's module namespace; see _Undefined."""

    def __missing__(self, key):
        # Global lookups in a dict subclass reach here before builtins are tried.
        b = dict.get(self, "__builtins__")
        b = b if isinstance(b, dict) else getattr(b, "__dict__", {})
        if key in b:
            return b[key]
        if not isinstance(key, str) or key.startswith("__"):
            raise KeyError(key)
        return _Undefined(key)


def _script_globals(script_path):
    # The seed's examples use these names without importing them.
    return _ScriptGlobals(
        {
            "__name__": "__main__",
            "__file__": script_path,
            "__builtins__": __builtins__,
            "VWED": VWED,
            "asyncio": asyncio,
            "json": json,
            "time": time,
            "datetime": _dt.datetime,
            "timedelta": _dt.timedelta,
        }
    )


def _boot(script_id, script_path, file_name, source, params):
    global _script_id, _script_path
    _script_id, _script_path = script_id, script_path
    try:
        code = compile(source, script_path, "exec")
    except SyntaxError as e:
        _vwed.booted("syntax", (str(e), e.msg or "invalid syntax", e.lineno, e.offset))
        return
    except (ValueError, RecursionError, MemoryError) as e:
        # NUL bytes in the source, or nesting too deep for the parser: refused
        # like a syntax error instead of leaving the start to time out.
        text = str(e) or type(e).__name__
        _vwed.booted("syntax", (text, text, None, None))
        return
    # Tracebacks show the script's own lines although the file is not on sys.path.
    linecache.cache[script_path] = (len(source), None, source.splitlines(True), script_path)
    g = _script_globals(script_path)
    try:
        exec(code, g)
    except BaseException as e:  # noqa: BLE001
        _vwed.booted("failed", _error_text(e), _print_exception(e))
        return
    boot = g.get("boot")
    if not callable(boot):
        _vwed.booted("noboot")
        return
    try:
        named, takes_positional, _ = _positional_params(boot)
        result = boot(params) if (named >= 1 and takes_positional) else boot()
    except BaseException as e:  # noqa: BLE001
        _vwed.booted("failed", _error_text(e), _print_exception(e))
        return
    if inspect.isawaitable(result):

        async def finish():
            try:
                await result
            except BaseException as e:  # noqa: BLE001
                _vwed.booted("failed", _error_text(e), _print_exception(e))
            else:
                _booted_ok()

        _loop.create_task(finish())
    else:
        _booted_ok()


def _booted_ok():
    # What boot() built (modules, handlers, tables) lives as long as the script: keep
    # it out of the cyclic collector's full passes, which otherwise walk all of it
    # again and again and show up as latency spikes on the script's routes.
    gc.collect()
    gc.freeze()
    _vwed.booted("ok")


# The data-dir lock the supervisor hands to a script worker (see its spawn).
_LOCK_FD = 4


def _forget_in_forked_children():
    """A process a script forks (os.fork, multiprocessing) is not the worker: it must
    hold neither the supervisor channel nor the data-dir lock. A child left running
    would otherwise keep the lock, and after a crash of the runtime the next one could
    not take its data dir. Only the descriptors inherited at start are closed, found
    by identity, never a file the script opened since."""
    inherited = []
    for fd in (_vwed.fileno(), _LOCK_FD):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        inherited.append((fd, st.st_dev, st.st_ino))

    def close_inherited():
        for fd, dev, ino in inherited:
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) == (dev, ino):
                    os.close(fd)
            except OSError:
                pass

    os.register_at_fork(after_in_child=close_inherited)


def main():
    global _loop
    _forget_in_forked_children()
    sys.stdout = _Output(1)
    sys.stderr = _Output(2)
    _vwed.configure(_Headers)
    _loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_loop)
    _loop.add_reader(_vwed.fileno(), _on_readable)
    _loop.call_soon(_on_readable)
    _loop.run_forever()


# -------------------------------------------------------------------- analyzer


def _analyze(req, source):
    try:
        tree = ast.parse(source, "<script>")
        compile(tree, "<script>", "exec")
    except SyntaxError as e:
        _vwed.analysis(req, (str(e), e.msg or "invalid syntax", e.lineno, e.offset), False)
        return
    except (ValueError, RecursionError, MemoryError) as e:
        text = str(e) or type(e).__name__
        _vwed.analysis(req, (text, text, None, None), False)
        return
    has_boot = any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "boot"
        for node in tree.body
    )
    _vwed.analysis(req, None, has_boot)


def analyzer_main():
    while True:
        for msg in _vwed.recv_blocking():
            if msg[0] == "analyze":
                _analyze(msg[1], msg[2])
            elif msg[0] in ("stop", "eof"):
                _vwed.exit(0)
