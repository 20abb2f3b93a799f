"""A local SMTP server for the mail tests (aiosmtpd): every message received is
written to <outdir>/<n>.eml with its envelope.
Usage: smtp_standin.py PORT OUTDIR [USER PASSWORD]; with a user, AUTH is required
(over plain SMTP: this is a loopback test peer)."""

import os
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Saver:
    def __init__(self, outdir):
        self.outdir = outdir
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        head = f"X-Envelope-From: {envelope.mail_from}\nX-Envelope-To: {','.join(envelope.rcpt_tos)}\n"
        path = os.path.join(self.outdir, f"{self.n}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(head.encode() + envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            auth_data is not None
            and getattr(auth_data, "login", None) == user.encode()
            and getattr(auth_data, "password", None) == password.encode()
        )
        # handled=False: the server sends the 535 itself.
        return AuthResult(success=ok, handled=False)

    return check


def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    kw = {}
    if len(sys.argv) > 4:
        kw = {
            "authenticator": authenticator(sys.argv[3], sys.argv[4]),
            "auth_required": True,
            "auth_require_tls": False,
        }
    c = Controller(Saver(outdir), hostname="127.0.0.1", port=port, **kw)
    c.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        c.stop()


if __name__ == "__main__":
    main()
