"""``VWED.log``, ``VWED.data`` and ``VWED.util``."""

import datetime as _dt
import sys
import time
import uuid as _uuid

import _vwed

from vwed_runtime.aio import asyncio
from vwed_runtime.core import DEFAULT_CALL_TIMEOUT, call, call_async, completed, schedule_flush


class Log:
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
        schedule_flush()

    def info(self, *args, **fields):
        self._write("INFO", args, fields)
        return completed()

    def warning(self, *args, **fields):
        self._write("WARNING", args, fields)
        return completed()

    warn = warning

    def error(self, *args, **fields):
        self._write("ERROR", args, fields)
        return completed()

    def debug(self, *args, **fields):
        self._write("DEBUG", args, fields)
        return completed()

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
        return call("log.flush", None, timeout)

    async def flush_async(self):
        sys.stdout.flush()
        sys.stderr.flush()
        return await call_async("log.flush")


class Data:
    """Key/value data of this script, kept by the runtime across restarts."""

    def set(self, key, value):
        call("data.set", {"key": str(key), "value": value})

    def get(self, key, default=None):
        r = call("data.get", {"key": str(key)})
        return r["value"] if r.get("found") else default

    def has(self, key):
        return bool(call("data.has", {"key": str(key)}))

    def delete(self, key):
        return bool(call("data.delete", {"key": str(key)}))

    def keys(self):
        return list(call("data.keys"))

    def clear(self):
        call("data.clear")


class Util:
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
