"""State shared by the worker's modules, and the one way to ask the supervisor for
a ``VWED.*`` service: ``call`` (blocking) and ``call_async`` (awaitable). A service
is named once, here as the first argument; the native module checks the name and
the argument shape against the supervisor's list and raises ``VWEDArgumentError``
for a mistake, so nothing wrong is ever sent."""

import threading
import warnings

import _vwed

from vwed_runtime.aio import asyncio

DEFAULT_CALL_TIMEOUT = 30.0


class State:
    script_id = ""
    script_path = ""
    loop = None
    main_thread = threading.get_ident()
    flush_pending = False


state = State()
tasks = {}  # supervisor request id -> asyncio.Task, so a timeout can cancel it
futures = {}  # our request id -> Future waiting for the supervisor's reply


def call(service, args=None, wait=DEFAULT_CALL_TIMEOUT):
    """Performs ``service`` and returns its answer; raises a ``VWEDError`` subclass."""
    return _vwed.request(service, args, wait)


async def call_async(service, args=None):
    req = _vwed.request_nowait(service, args)
    fut = state.loop.create_future()
    futures[req] = fut
    schedule_flush()
    return await fut


def notify(service, args=None):
    """Asks for ``service`` without waiting for an answer."""
    _vwed.notify(service, args)
    schedule_flush()


async def _vwed_completed(value=None):
    return value


def completed(value=None):
    """An already finished awaitable: VWED.log.info(...) and VWED.event.emit(...)
    act at call time, so `await`, no `await` and asyncio.create_task() all work."""
    return _vwed_completed(value)


# Not awaiting `completed()` is normal here, not a bug worth a warning.
warnings.filterwarnings(
    "ignore",
    message=r"coroutine '_vwed_completed' was never awaited",
    category=RuntimeWarning,
)


def schedule_flush():
    if state.flush_pending or state.loop is None:
        return
    state.flush_pending = True
    if threading.get_ident() == state.main_thread:
        state.loop.call_soon(_flush_now)
    else:
        state.loop.call_soon_threadsafe(_flush_now)


def _flush_now():
    state.flush_pending = False
    _vwed.flush()


__all__ = ["asyncio", "call", "call_async", "notify", "completed", "schedule_flush", "state"]
