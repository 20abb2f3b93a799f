"""The dispatch loop: the supervisor's requests (routes, function calls, events,
timers, replies) served one at a time on one asyncio loop."""

import inspect
import sys

import _vwed

from vwed_runtime import errors, handlers, job, report
from vwed_runtime.aio import asyncio
from vwed_runtime.api import Headers, Response
from vwed_runtime.boot import boot, forget_in_forked_children
from vwed_runtime.core import futures, schedule_flush, state, tasks


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
            tasks.pop(req, None)
            schedule_flush()

    tasks[req] = state.loop.create_task(runner())


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


# --------------------------------------------------------------------- routes


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
        report.exception(e)
        _vwed.route_reply(
            req, 500, [], {"success": False, "error": f"返回值无法序列化为JSON: {e}"}, False
        )


def _route_failed(req, exc):
    report.exception(exc)
    body = {
        "success": False,
        "error": f"脚本接口执行失败: {report.error_text(exc)}",
        "script_id": state.script_id,
    }
    _vwed.route_reply(req, 500, [], body, False)


def _on_route(req, hid, data):
    _answer(req, lambda: handlers.call_handler(hid, data), _reply_route, _route_failed)


# -------------------------------------------------------------- function calls


def _reply_call(req, value):
    try:
        _vwed.call_reply(req, value)
    except TypeError as e:
        _vwed.call_reply(req, f"返回值无法序列化为JSON: {e}", "bad_result")


def _on_call(req, hid, args):
    def failed(req, exc):
        if handlers.did_not_bind(exc):
            # The caller's mistake, not the function's: no traceback.
            sig = handlers.signature_text(hid)
            _vwed.call_reply(req, f"签名为 {sig}; {exc}", "argument_mismatch")
            return
        report.exception(exc)
        _vwed.call_reply(req, report.error_text(exc), "raised")

    _answer(req, lambda: handlers.call_with_args(hid, args), _reply_call, failed)


# ------------------------------------------------------------ events, timers


def _listener_failed(hid, name, exc, errors_seen):
    report.repeated(hid, f"事件 {name} 的监听器 {handlers.signature_text(hid)}", exc)
    errors_seen.append(report.error_text(exc))


def _on_event(req, hids, name, data):
    """Listeners of one event run in the given (priority) order; one that raises does
    not stop the others."""

    async def run_async(rest, errors_seen):
        for hid in rest:
            try:
                r = handlers.call_handler(hid, data)
                if inspect.isawaitable(r):
                    await r
            except Exception as e:  # noqa: BLE001
                _listener_failed(hid, name, e, errors_seen)
        return errors_seen

    errors_seen = []
    for i, hid in enumerate(hids):
        try:
            r = handlers.call_handler(hid, data)
        except Exception as e:  # noqa: BLE001
            _listener_failed(hid, name, e, errors_seen)
            continue
        if inspect.isawaitable(r):

            async def chain(first=r, first_hid=hid, rest=hids[i + 1 :]):
                try:
                    await first
                except Exception as e:  # noqa: BLE001
                    _listener_failed(first_hid, name, e, errors_seen)
                return await run_async(rest, errors_seen)

            _run_task(
                req,
                chain(),
                lambda errs: _vwed.done(req, "; ".join(errs) or None),
                lambda e: _vwed.done(req, report.error_text(e)),
            )
            return
    _vwed.done(req, "; ".join(errors_seen) or None)


def _on_timer(req, hid):
    def failed(exc):
        report.repeated(hid, f"定时任务 {handlers.signature_text(hid)}", exc)
        _vwed.done(req, report.error_text(exc))

    try:
        r = handlers.call_handler(hid, None)
    except Exception as e:  # noqa: BLE001
        failed(e)
        return
    if inspect.isawaitable(r):
        _run_task(req, r, lambda _v: _vwed.done(req, None), failed)
    else:
        _vwed.done(req, None)


# ---------------------------------------------------------------------- loop


def _on_reply(req, value, error):
    fut = futures.pop(req, None)
    if fut is None or fut.done():
        return
    if error is None:
        fut.set_result(value)
    else:
        fut.set_exception(errors.make(*error))


def _shutdown():
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        _vwed.exit(0)


def _cancel(req):
    task = tasks.pop(req, None)
    if task is not None:
        task.cancel()


_HANDLERS = {
    "route": _on_route,
    "call": _on_call,
    "event": _on_event,
    "timer": _on_timer,
    "reply": _on_reply,
    "cancel": _cancel,
    "ping": lambda req: _vwed.done(req, None),
    "boot": boot,
    "job": job.run,
    "stop": _shutdown,
    "eof": _shutdown,
}


def _on_readable():
    for msg in _vwed.recv():
        handle = _HANDLERS.get(msg[0])
        if handle is not None:
            handle(*msg[1:])
    # A synchronous VWED call inside a handler may have parked messages that the
    # socket will not announce again.
    if _vwed.pending():
        state.loop.call_soon(_on_readable)
    _vwed.flush()


def main():
    forget_in_forked_children()
    sys.stdout = report.Output(1)
    sys.stderr = report.Output(2)
    _vwed.configure(Headers, errors.make)
    state.loop = asyncio.new_event_loop()
    asyncio.set_event_loop(state.loop)
    state.loop.add_reader(_vwed.fileno(), _on_readable)
    state.loop.call_soon(_on_readable)
    state.loop.run_forever()
