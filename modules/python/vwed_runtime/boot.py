"""Loading a script and running its ``boot()``."""

import datetime as _dt
import gc
import inspect
import json
import linecache
import os
import time

import _vwed

from vwed_runtime import errors, report
from vwed_runtime.aio import asyncio
from vwed_runtime.core import state
from vwed_runtime.facade import VWED
from vwed_runtime.handlers import Undefined, positional_params


class _ScriptGlobals(dict):
    """A script's module namespace; see handlers.Undefined."""

    def __missing__(self, key):
        # Global lookups in a dict subclass reach here before builtins are tried.
        b = dict.get(self, "__builtins__")
        b = b if isinstance(b, dict) else getattr(b, "__dict__", {})
        if key in b:
            return b[key]
        if not isinstance(key, str) or key.startswith("__"):
            raise KeyError(key)
        return Undefined(key)


def _script_globals(script_path):
    # The seed's examples use these names without importing them; the error
    # classes are there so that scripts can `except VWEDTimeoutError:` as is.
    g = {
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
    g.update({cls.__name__: cls for cls in errors.ALL})
    return _ScriptGlobals(g)


def _compile(source, script_path):
    """The script's code, or None after reporting why it does not compile."""
    try:
        return compile(source, script_path, "exec")
    except SyntaxError as e:
        _vwed.booted("syntax", (str(e), e.msg or "invalid syntax", e.lineno, e.offset))
    except (ValueError, RecursionError, MemoryError) as e:
        # NUL bytes in the source, or nesting too deep for the parser: refused
        # like a syntax error instead of leaving the start to time out.
        text = str(e) or type(e).__name__
        _vwed.booted("syntax", (text, text, None, None))
    return None


def _failed(exc):
    _vwed.booted("failed", report.error_text(exc), report.exception(exc))


def boot(script_id, script_path, file_name, source, params):
    state.script_id, state.script_path = script_id, script_path
    code = _compile(source, script_path)
    if code is None:
        return
    # Tracebacks show the script's own lines although the file is not on sys.path.
    linecache.cache[script_path] = (len(source), None, source.splitlines(True), script_path)
    g = _script_globals(script_path)
    try:
        exec(code, g)
    except BaseException as e:  # noqa: BLE001
        _failed(e)
        return
    entry = g.get("boot")
    if not callable(entry):
        _vwed.booted("noboot")
        return
    try:
        named, takes_positional, _ = positional_params(entry)
        result = entry(params) if (named >= 1 and takes_positional) else entry()
    except BaseException as e:  # noqa: BLE001
        _failed(e)
        return
    if inspect.isawaitable(result):

        async def finish():
            try:
                await result
            except BaseException as e:  # noqa: BLE001
                _failed(e)
            else:
                _booted_ok()

        state.loop.create_task(finish())
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


def forget_in_forked_children():
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
