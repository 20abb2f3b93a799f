"""Running a one-shot job: a fresh worker gets one ``job`` message, runs the
source to completion and answers with its result.

A job's input is the global ``PARAMS`` (a dict), always there; a job that defines
``main`` gets it as ``main(params)`` too (``main()`` when main takes no
parameter), and ``main``'s return value is the result. Without ``main`` the module
body is the job and the result is ``None``. ``main`` may be ``async``. The job's
``os.environ`` is the environment the supervisor sent, nothing else, and its
working directory is its own work dir (``VWED_WORK_DIR``, removed afterwards).
``sys.exit(n)`` ends the worker with exit code ``n`` (0 = success).
"""

import inspect
import linecache
import os
import sys
import threading
import time

import _vwed

from vwed_runtime import report
from vwed_runtime.boot import _script_globals
from vwed_runtime.core import schedule_flush, state
from vwed_runtime.handlers import positional_params


# How often printed and logged lines of a job reach the supervisor while the job
# blocks its thread (time.sleep, a long computation): its output streams live.
_FLUSH_EVERY_S = 0.02


def _flush_while_running():
    def flusher():
        while True:
            time.sleep(_FLUSH_EVERY_S)
            if _vwed.has_output():
                _vwed.flush()

    threading.Thread(target=flusher, name="vwed-job-flush", daemon=True).start()


def _reply(req, value):
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        _vwed.call_reply(req, value)
    except TypeError as e:
        _vwed.call_reply(req, f"返回值无法序列化为JSON: {e}", "bad_result")
    _vwed.flush()


def _failed(req, exc):
    if isinstance(exc, SystemExit):
        _exit_with(exc)
    report.exception(exc)
    _vwed.call_reply(req, report.error_text(exc), "raised")
    _vwed.flush()


def _exit_with(exc):
    """``sys.exit(n)``: the worker's exit code is the job's."""
    code = exc.code
    if code is None:
        n = 0
    elif isinstance(code, int):
        n = code & 0xFF
    else:
        print(code, file=sys.stderr)
        n = 1
    sys.stdout.flush()
    sys.stderr.flush()
    _vwed.exit(n)


def _environment(env):
    os.environ.clear()
    os.environ.update(dict(env))
    work_dir = os.environ.get("VWED_WORK_DIR")
    if work_dir:
        os.chdir(work_dir)


def run(req, execution_id, job_path, source, params, env):
    # The worker confined itself when this message arrived (native.rs), as for a
    # service script's Boot: the job's work dir is the one folder it may write.
    state.script_id, state.script_path = execution_id, job_path
    _environment(env)
    _flush_while_running()
    try:
        code = compile(source, job_path, "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        _failed(req, e)
        return
    linecache.cache[job_path] = (len(source), None, source.splitlines(True), job_path)
    g = dict(_script_globals(job_path))
    g["PARAMS"] = params
    try:
        exec(code, g)
        entry = g.get("main")
        if not callable(entry):
            _reply(req, None)
            return
        named, takes_positional, _ = positional_params(entry)
        result = entry(params) if (named >= 1 and takes_positional) else entry()
    except BaseException as e:  # noqa: BLE001 - every failure is the job's result
        _failed(req, e)
        return
    if not inspect.isawaitable(result):
        _reply(req, result)
        return

    async def finish():
        try:
            value = await result
        except BaseException as e:  # noqa: BLE001
            _failed(req, e)
        else:
            _reply(req, value)
        finally:
            schedule_flush()

    state.loop.create_task(finish())
