"""Line-protocol test peer: a robot controller stand-in on a serial port.

Reads CRLF-terminated lines and answers "ECHO <line>". "SLOW <ms>" answers
after that many milliseconds; "QUIET" answers nothing. Prints READY once the
port is open.

    line_echo.py /dev/pts/7
"""

import sys
import time

import serial


def main():
    port = serial.Serial(sys.argv[1], baudrate=115200, timeout=0.05)
    print("READY", flush=True)
    buffer = b""
    while True:
        buffer += port.read(256)
        while b"\r\n" in buffer:
            line, buffer = buffer.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            if text == "QUIET":
                continue
            if text.startswith("SLOW "):
                time.sleep(int(text.split()[1]) / 1000.0)
            port.write(f"ECHO {text}\r\n".encode())
            port.flush()


if __name__ == "__main__":
    main()
