"""What the script prints, and the exceptions it raises.

print() output goes to the supervisor in whole lines. An exception the script
raises (in boot, a handler, a timer, a listener) becomes one record: its traceback
as one text, without the runtime's own frames. A timer or listener that raises the
same error on every run is reported in full once, then as "raised again N times"
summaries whose spacing doubles up to ``SUMMARY_MAX_S``: never an endless stream.
"""

import sys
import time
import traceback

import _vwed

from vwed_runtime.core import schedule_flush, state

SUMMARY_FIRST_S = 1.0
SUMMARY_MAX_S = 300.0
# Distinct errors tracked per handler; more than that share one count.
MAX_SIGNATURES = 16


class Output:
    """Sends print() output to the supervisor in whole lines. The native side keeps
    the unfinished line and cuts a line longer than the supervisor's limit, reading
    the text in slices: a line of any length never needs its length in memory."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, stream):
        self._stream = stream

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if _vwed.output(self._stream, s):
            schedule_flush()
        return len(s)

    def flush(self):
        _vwed.output_flush(self._stream)
        schedule_flush()

    def isatty(self):
        return False

    def writable(self):
        return True


def _is_runtime(filename):
    return filename == "vwed_runtime.py" or filename.startswith("vwed_runtime/")


def _strip_runtime_frames(te, seen):
    if te is None or id(te) in seen:
        return
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not _is_runtime(f.filename)]
    )
    _strip_runtime_frames(te.__cause__, seen)
    _strip_runtime_frames(te.__context__, seen)
    for sub in getattr(te, "exceptions", None) or ():
        _strip_runtime_frames(sub, seen)


def format_exception(exc):
    """The traceback of ``exc`` as the script author needs it: their frames only."""
    te = traceback.TracebackException.from_exception(exc)
    _strip_runtime_frames(te, set())
    return "".join(te.format()).rstrip("\n")


def error_text(exc):
    msg = str(exc)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def exception(exc):
    """Reports ``exc`` as one record; returns the traceback text."""
    sys.stdout.flush()
    sys.stderr.flush()
    text = format_exception(exc)
    _vwed.traceback(text)
    schedule_flush()
    return text


class _Seen:
    __slots__ = ("count", "wait", "timer")

    def __init__(self):
        self.count = 0
        self.wait = SUMMARY_FIRST_S
        self.timer = None


_repeats = {}  # handler id -> {signature: _Seen}


def repeated(hid, what, exc):
    """Reports an error of the handler ``hid`` (a timer or listener, described by
    ``what``) that may come again on every run."""
    sig = (type(exc).__name__, str(exc))
    seen = _repeats.setdefault(hid, {})
    s = seen.get(sig)
    if s is None:
        if len(seen) >= MAX_SIGNATURES:
            sig = ("*", "")
            s = seen.setdefault(sig, _Seen())
        else:
            seen[sig] = _Seen()
            exception(exc)
            return
    s.count += 1
    if s.timer is None and state.loop is not None:
        s.timer = state.loop.call_later(s.wait, _summarise, hid, what, sig, error_text(exc))


def _summarise(hid, what, sig, text):
    s = _repeats.get(hid, {}).get(sig)
    if s is None:
        return
    s.timer = None
    if s.count == 0:
        return
    _vwed.traceback(f"{what} 又抛出同一异常 {s.count} 次 (最近 {s.wait:g} 秒内): {text}")
    schedule_flush()
    s.count = 0
    s.wait = min(s.wait * 2, SUMMARY_MAX_S)
    s.timer = state.loop.call_later(s.wait, _summarise, hid, what, sig, text)


def forget(hid):
    """The handler is gone (timer cancelled): drop its counts."""
    for s in _repeats.pop(hid, {}).values():
        if s.timer is not None:
            s.timer.cancel()
