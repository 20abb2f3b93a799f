"""Modbus TCP peer for the I/O benchmarks (bench/io/run.py).

Serves UNITS units with SIZE holding registers each (all 0 at start). Every
100 ms it increments CHANGES registers of every unit (spread over the table),
so the poller sees a steady stream of changes. Prints READY once it accepts
requests.

    modbus_server.py PORT UNITS SIZE CHANGES
"""

import asyncio
import sys

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer


def unit(size):
    # pymodbus looks addresses up one higher than requested; start at 1.
    return ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, [0] * size))


async def churn(context, units, size, changes):
    if changes <= 0:
        return
    step = max(1, size // changes)
    n = 0
    while True:
        await asyncio.sleep(0.1)
        n = (n + 1) & 0x7FFF
        for u in range(1, units + 1):
            for i in range(changes):
                # Registers 0..9 are left alone: the latency probe writes there.
                addr = 10 + (i * step) % (size - 10)
                context[u].setValues(3, addr, [n])


async def main():
    port, units, size, changes = (int(a) for a in sys.argv[1:5])
    context = ModbusServerContext(
        devices={u: unit(size) for u in range(1, units + 1)}, single=False
    )
    server = ModbusTcpServer(context, address=("127.0.0.1", port))
    task = asyncio.create_task(churn(context, units, size, changes))
    await server.serve_forever(background=True)
    print("READY", flush=True)
    try:
        await server.serving
    finally:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
