"""asyncio without ssl until something needs ssl."""

import importlib.abc
import importlib.util
import sys


def _import_asyncio_lazy_ssl():
    """asyncio imports ssl eagerly, and ssl maps libcrypto: about 5 MB per worker
    that most scripts never use. Import asyncio as if ssl were absent, then hand it
    the real module the moment anything imports ssl."""
    saved = sys.modules.get("ssl")
    had = "ssl" in sys.modules
    sys.modules["ssl"] = None
    try:
        import asyncio as aio
    finally:
        if had:
            sys.modules["ssl"] = saved
        else:
            del sys.modules["ssl"]
    if saved is not None:
        return aio

    def give_asyncio(ssl):
        from asyncio import base_events, selector_events, sslproto

        for m in (base_events, selector_events, sslproto):
            m.ssl = ssl
        sslproto.SSLAgainErrors = (ssl.SSLWantReadError, ssl.SSLSyscallError)

    class SslLoader(importlib.abc.Loader):
        def __init__(self, real):
            self._real = real

        def create_module(self, spec):
            return self._real.create_module(spec)

        def exec_module(self, module):
            self._real.exec_module(module)
            give_asyncio(module)

    class SslFinder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "ssl":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec("ssl")
            if spec is not None and spec.loader is not None:
                spec.loader = SslLoader(spec.loader)
            return spec

    sys.meta_path.insert(0, SslFinder())
    return aio


asyncio = _import_asyncio_lazy_ssl()
