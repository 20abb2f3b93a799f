"""``VWED.event`` and ``VWED.timer``: listeners, emits and timers. The supervisor
keeps the clock and the listener queues; the worker only runs what it is sent."""

import _vwed

from vwed_runtime import handlers, report
from vwed_runtime.core import completed, notify, schedule_flush
from vwed_runtime.errors import VWEDArgumentError, VWEDNotFoundError


class Event:
    def listen(self, event_name=None, handler=None, priority=1, **_ignored):
        if handler is None:

            def deco(fn):
                self.listen(event_name=event_name, handler=fn, priority=priority)
                return fn

            return deco
        if not isinstance(event_name, str) or not event_name:
            raise VWEDArgumentError("event name must be a non-empty string")
        hid = handlers.add(handler, "listener")
        _vwed.register_listener(hid, event_name, int(priority))
        return handler

    def on(self, event_name, priority=1):
        return self.listen(event_name, priority=priority)

    def emit(self, event_name=None, data=None, **_ignored):
        if not isinstance(event_name, str) or not event_name:
            raise VWEDArgumentError("event name must be a non-empty string")
        notify("event.emit", {"name": event_name, "data": data})
        return completed()

    def clear_all(self):
        handlers.clear_kind("listener")


def _seconds(value, what):
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise VWEDArgumentError(f"{what} must be a number of seconds, got {value!r}") from None
    if s < 0 or s != s or s == float("inf"):
        raise VWEDArgumentError(f"{what} must be zero or more seconds, got {value!r}")
    return s


class Timer:
    def _add(self, handler, interval, delay, repeat, cron=None):
        hid = handlers.add(handler, "timer")
        name = getattr(handler, "__name__", "timer")
        _vwed.register_timer(hid, name, int(interval * 1000), int(delay * 1000), bool(repeat), cron)
        return f"timer_{hid}"

    def interval(self, seconds, repeat=True, delay=None):
        """Runs every `seconds`; the first run comes after `delay` seconds, or after one
        interval when no delay is given."""
        every = _seconds(seconds, "interval")
        if repeat and every <= 0:
            raise VWEDArgumentError("a repeating interval must be more than 0 seconds")
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
            raise VWEDArgumentError(
                "cron expression must be a non-empty string such as '*/5 * * * *'"
            )

        def deco(fn):
            self._add(fn, 0, 0, True, expr.strip())
            return fn

        return deco

    def schedule(self, interval=None, handler=None, repeat=True, delay=None, cron=None):
        if handler is None:
            raise VWEDArgumentError("schedule needs handler=")
        if cron is not None:
            return self._add(handler, 0, 0, True, str(cron))
        every = _seconds(interval, "interval")
        if repeat and every <= 0:
            raise VWEDArgumentError("a repeating interval must be more than 0 seconds")
        first = every if delay is None else _seconds(delay, "delay")
        return self._add(handler, every, first, repeat)

    def delay(self, seconds=0, handler=None):
        if handler is None:
            raise VWEDArgumentError("delay needs handler=")
        return self._add(handler, 0, _seconds(seconds, "delay"), False)

    def cancel(self, timer_id):
        try:
            hid = int(str(timer_id).rsplit("_", 1)[-1])
        except ValueError:
            raise VWEDArgumentError(f"unknown timer id {timer_id!r}") from None
        if handlers.kinds.get(hid) != "timer":
            raise VWEDNotFoundError(f"unknown timer id {timer_id!r}")
        _vwed.unregister("timer", hid)
        del handlers.kinds[hid]
        report.forget(hid)
        schedule_flush()
        return True

    def clear_all(self):
        handlers.clear_kind("timer")
