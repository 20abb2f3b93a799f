"""``VWED.function``: named functions any script (or the task server) may call."""

import inspect

import _vwed

from vwed_runtime import handlers
from vwed_runtime.core import DEFAULT_CALL_TIMEOUT, call, call_async
from vwed_runtime.errors import VWEDArgumentError


def _normalise_parameters(parameters, params):
    if parameters is not None:
        if not isinstance(parameters, (list, tuple)):
            raise VWEDArgumentError("parameters must be a list of {'name': ..., 'type': ...} dicts")
        return [dict(p) if isinstance(p, dict) else {"name": str(p)} for p in parameters]
    if params is not None:
        return [{"name": str(p)} for p in params]
    return []


def _call_local(hid, args):
    """A function of this script, called directly; arguments that do not fit its
    signature raise VWEDArgumentError like a remote call's."""
    try:
        return handlers.call_with_args(hid, args)
    except TypeError as e:
        if handlers.did_not_bind(e):
            raise VWEDArgumentError(
                f"参数与函数签名 {handlers.signature_text(hid)} 不匹配: {e}"
            ) from None
        raise


def _remote_args(name, args, timeout):
    t = float(timeout) if timeout is not None else DEFAULT_CALL_TIMEOUT
    if not t > 0 or t == float("inf"):
        raise VWEDArgumentError(f"timeout 必须是正数秒, 得到 {timeout!r}")
    return t, {"name": name, "args": args, "timeout_ms": int(t * 1000)}


class Function:
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
            raise VWEDArgumentError("function name must not be empty")
        # The seed's positional form register(name, handler, description).
        if isinstance(description, (list, tuple)) and params is None:
            description, params = "", description
        hid = handlers.add(handler, "function")
        _vwed.register_function(
            hid,
            name,
            str(description or ""),
            _normalise_parameters(parameters, params),
            return_schema,
            [str(t) for t in (tags or [])],
            inspect.iscoroutinefunction(handler),
        )
        handlers.local_functions[name] = hid
        return handler

    def call(self, name=None, args=None, timeout=None, **kw):
        """Calls a registered function of any running script and returns its result."""
        if args is None and kw:
            args = kw
        hid = handlers.local_functions.get(name)
        if hid is not None:
            if inspect.iscoroutinefunction(handlers.handlers[hid]):
                raise VWEDArgumentError(
                    f"函数 {name} 是异步函数, 请使用 await VWED.function.call_async(...)"
                )
            return _call_local(hid, args)
        t, payload = _remote_args(name, args, timeout)
        return call("function.call", payload, t + 5.0)

    async def call_async(self, name=None, args=None, timeout=None, **kw):
        if args is None and kw:
            args = kw
        hid = handlers.local_functions.get(name)
        if hid is not None:
            r = _call_local(hid, args)
            return (await r) if inspect.isawaitable(r) else r
        _t, payload = _remote_args(name, args, timeout)
        return await call_async("function.call", payload)

    def list_all(self):
        return call("function.list")

    def clear_all(self):
        handlers.clear_kind("function")
