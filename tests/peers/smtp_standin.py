"""A local SMTP server for the mail tests (aiosmtpd): every message received is
written to <outdir>/<n>.eml with its envelope, and whether it came over TLS.
Usage: smtp_standin.py PORT OUTDIR [--auth USER PASSWORD] [--starttls CERT KEY].
With --auth, AUTH is required (over plain SMTP unless --starttls: this is a
loopback test peer); with --starttls, STARTTLS is required before anything else."""

import argparse
import os
import ssl
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Saver:
    def __init__(self, outdir):
        self.outdir = outdir
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        tls = "no" if session.ssl is None else "yes"
        head = (
            f"X-Envelope-From: {envelope.mail_from}\n"
            f"X-Envelope-To: {','.join(envelope.rcpt_tos)}\n"
            f"X-Over-TLS: {tls}\n"
        )
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
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--auth", nargs=2, metavar=("USER", "PASSWORD"))
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    a = ap.parse_args()
    kw = {}
    if a.auth:
        kw.update(
            authenticator=authenticator(*a.auth),
            auth_required=True,
            auth_require_tls=bool(a.starttls),
        )
    if a.starttls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*a.starttls)
        kw.update(tls_context=ctx, require_starttls=True)
    c = Controller(Saver(a.outdir), hostname="127.0.0.1", port=a.port, **kw)
    c.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        c.stop()


if __name__ == "__main__":
    main()
