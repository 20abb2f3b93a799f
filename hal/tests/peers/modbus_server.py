"""Modbus test peer for the vwed-hal integration tests.

Serves units 1 and 2 over TCP or RTU (serial) with pymodbus. Each table
holds 100 entries (addresses 0..99); anything beyond answers "illegal data
address". Input register 0 of unit 1 counts up every 100 ms so pollers see
changes. Holding registers 50..51 hold 5050, 5051; writing coil 98 of a
unit makes its next read of holding register 50 answer 600 ms late, to
exercise late replies. Prints READY on stdout once it accepts requests.

    modbus_server.py tcp 127.0.0.1 5020
    modbus_server.py rtu /dev/pts/7
"""

import asyncio
import sys
import time

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

SIZE = 100


def block(values):
    # pymodbus shifts request addresses by one before looking them up, so
    # the block starts at 1 for protocol address 0 to land on values[0].
    padded = list(values) + [0] * (SIZE - len(values))
    return ModbusSequentialDataBlock(1, padded[:SIZE])


class LateOnce(ModbusDeviceContext):
    """A device context that can be armed to answer one read late."""

    armed = False

    def setValues(self, func_code, address, values):
        if func_code in (5, 15) and address == 98 and values and values[0]:
            self.armed = True
        return super().setValues(func_code, address, values)

    def getValues(self, func_code, address, count=1):
        if self.armed and func_code == 3 and address == 50:
            self.armed = False
            # Blocking on purpose: a slow device holds the whole line.
            time.sleep(0.6)
        return super().getValues(func_code, address, count)


def unit(seed):
    hr = [1234 + seed, 0x3FC0, 0x0000, 0xFFFE] + [0] * 46 + [5050, 5051]
    return LateOnce(
        co=block([True, False, True]),
        di=block([False, True]),
        # hr 0 = 1234, hr 1..2 = f32 1.5 (big endian, high word first), hr 3 = -2 as i16
        hr=block(hr),
        ir=block([0, 42]),
    )


async def count_up(context):
    value = 0
    while True:
        await asyncio.sleep(0.1)
        value = (value + 1) & 0xFFFF
        context[1].setValues(4, 0, [value])


async def main():
    mode = sys.argv[1]
    context = ModbusServerContext(devices={1: unit(0), 2: unit(1000)}, single=False)
    if mode == "tcp":
        server = ModbusTcpServer(context, address=(sys.argv[2], int(sys.argv[3])))
    elif mode == "rtu":
        server = ModbusSerialServer(
            context, framer=FramerType.RTU, port=sys.argv[2], baudrate=19200
        )
    else:
        raise SystemExit(f"unknown mode {mode}")
    counter = asyncio.create_task(count_up(context))
    await server.serve_forever(background=True)
    print("READY", flush=True)
    try:
        await server.serving
    finally:
        counter.cancel()


if __name__ == "__main__":
    asyncio.run(main())
