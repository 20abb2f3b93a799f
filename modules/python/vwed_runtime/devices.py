"""``VWED.io``, ``VWED.device`` and ``VWED.robot``. Points, devices and robots come
from the runtime's device config (io_config); the supervisor owns every bus, and
these calls are requests to it."""

from vwed_runtime.core import DEFAULT_CALL_TIMEOUT, call, call_async
from vwed_runtime.errors import VWEDArgumentError
from vwed_runtime.events import Event


class Io:
    """Named I/O points. A change of a point is the event ``io.<tag>``."""

    def read(self, tag, detail=False, live=False):
        """The point's value (raises VWEDError if it has no good value).

        ``detail=True`` returns ``{tag, value, quality, error, last_change, ...}``
        instead, also for a bad point; ``live=True`` reads the device now.
        """
        r = call("io.read", {"tag": str(tag), "detail": bool(detail), "live": bool(live)})
        return r if detail else r.get("value")

    async def read_async(self, tag, detail=False, live=False):
        args = {"tag": str(tag), "detail": bool(detail), "live": bool(live)}
        r = await call_async("io.read", args)
        return r if detail else r.get("value")

    def write(self, tag, value):
        """Writes a point; refused for read-only points. Logged with this script's id."""
        call("io.write", {"tag": str(tag), "value": value})

    async def write_async(self, tag, value):
        await call_async("io.write", {"tag": str(tag), "value": value})

    def points(self):
        return call("io.points")

    def on_change(self, tag, priority=1):
        """Decorator: ``handler(change)`` runs on every change of the point's value
        (beyond its deadband) or quality; ``change`` is
        ``{tag, value, previous, quality, timestamp, ts_ms, error, seq}``."""
        if not isinstance(tag, str) or not tag:
            raise VWEDArgumentError("tag must be a non-empty string")
        return Event().listen("io." + tag, priority=priority)


class ModbusDevice:
    """Raw Modbus access to a configured device (or a bus, with ``unit=``)."""

    def __init__(self, target):
        self.target = target

    def _args(self, address, unit, **more):
        return {"target": self.target, "address": int(address), "unit": unit, **more}

    def read_holding(self, address, count=1, unit=None):
        return call("device.modbus.read_holding", self._args(address, unit, count=int(count)))

    def read_input(self, address, count=1, unit=None):
        return call("device.modbus.read_input", self._args(address, unit, count=int(count)))

    def read_coils(self, address, count=1, unit=None):
        return call("device.modbus.read_coils", self._args(address, unit, count=int(count)))

    def read_discrete(self, address, count=1, unit=None):
        return call("device.modbus.read_discrete", self._args(address, unit, count=int(count)))

    def write_register(self, address, value, unit=None):
        call("device.modbus.write_register", self._args(address, unit, value=value))

    def write_registers(self, address, values, unit=None):
        call("device.modbus.write_registers", self._args(address, unit, values=list(values)))

    def write_coil(self, address, value, unit=None):
        call("device.modbus.write_coil", self._args(address, unit, value=bool(value)))

    def write_coils(self, address, values, unit=None):
        bits = [bool(v) for v in values]
        call("device.modbus.write_coils", self._args(address, unit, values=bits))

    def __repr__(self):
        return f"<VWED modbus device {self.target!r}>"


class SerialDevice:
    def __init__(self, device):
        self.device = device

    def request(self, line, timeout=None):
        """Sends one line and returns the reply line."""
        args = {"device": self.device, "line": str(line)}
        wait = DEFAULT_CALL_TIMEOUT
        if timeout is not None:
            t = float(timeout)
            if not 0 <= t < float("inf"):
                raise VWEDArgumentError(f"timeout 必须是有限的非负秒数, 得到 {timeout!r}")
            args["timeout_ms"] = max(1, int(t * 1000))
            wait = t + 5.0
        return call("device.serial.request", args, wait)


class Device:
    def modbus(self, device=None, *, ip=None, port=502, register=None, value=None, unit=None, slave_id=None, count=1, **_ignored):
        """``modbus("press")`` gives the device (or bus) object. The one-shot form
        ``modbus(ip=, port=, register=, value=)`` writes (or, without value, reads)
        a holding register on the configured Modbus TCP bus at that address."""
        if device is not None:
            return ModbusDevice(str(device))
        if ip is None or register is None:
            raise VWEDArgumentError(
                "VWED.device.modbus() needs a device or bus name, or ip= and register="
            )
        args = {
            "ip": str(ip),
            "port": int(port),
            "register": int(register),
            "unit": unit if unit is not None else slave_id,
            "count": int(count),
        }
        if value is not None:
            args["value"] = value
        return call("device.modbus.oneshot", args)

    def serial(self, device):
        return SerialDevice(str(device))


class Robot:
    """Robots of the device config: status points plus command points."""

    def get_status(self, robot_id):
        return call("robot.get_status", {"robot_id": str(robot_id)})

    def get_all(self):
        return call("robot.get_all")

    def dispatch(self, robot_id, task_id=None, command=None, value=None):
        """Writes ``value`` (or ``task_id``) to the robot's command point ``command``
        (optional when the robot has one command)."""
        args = {"robot_id": str(robot_id), "task_id": task_id, "command": command, "value": value}
        return call("robot.dispatch", args)
