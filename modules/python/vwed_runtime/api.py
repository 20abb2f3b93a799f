"""``VWED.api``: HTTP routes under ``/script-api``."""

import _vwed

from vwed_runtime import handlers
from vwed_runtime.errors import VWEDArgumentError


class Response:
    """A handler's answer with its own status and headers."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, status=200, body=None, headers=None):
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise VWEDArgumentError(
                f"HTTP status must be an int between 100 and 599, got {status!r}"
            )
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class Headers(dict):
    """Request headers; names are case-insensitive, as in HTTP."""

    __slots__ = ()

    def __getitem__(self, key):
        return dict.__getitem__(self, key.lower() if isinstance(key, str) else key)

    def get(self, key, default=None):
        return dict.get(self, key.lower() if isinstance(key, str) else key, default)

    def __contains__(self, key):
        return dict.__contains__(self, key.lower() if isinstance(key, str) else key)


_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def _public(public):
    if not isinstance(public, bool):
        raise VWEDArgumentError(f"public must be True or False, got {public!r}")
    return public


def _route_path(path):
    if not isinstance(path, str) or not path:
        raise VWEDArgumentError("route path must be a non-empty string such as '/hello'")
    if not path.startswith("/"):
        path = "/" + path
    # The seed's examples sometimes spell the public prefix out; it is implied.
    if path == "/script-api" or path.startswith("/script-api/"):
        path = path[len("/script-api") :] or "/"
    return path


class Api:
    def register_route(
        self, path=None, method="GET", handler=None, description="", public=False, **_ignored
    ):
        """``public=True``: callable without a credential (a PLC or device
        webhook); otherwise callers need an operator login or an API token."""
        if handler is None:
            raise VWEDArgumentError("register_route needs handler=")
        _public(public)
        method = str(method).upper()
        if method not in _METHODS:
            raise VWEDArgumentError(
                f"unsupported HTTP method {method}; use one of {', '.join(_METHODS)}"
            )
        path = _route_path(path)
        hid = handlers.add(handler, "route")
        _vwed.register_route(hid, method, path, str(description or ""), public)
        return handler

    def register(self, path, method="GET", description="", public=False, **kw):
        # Said at the decorator, not only once it is applied.
        _public(public)

        def deco(fn):
            self.register_route(
                path=path,
                method=method,
                handler=fn,
                description=description,
                public=public,
                **kw,
            )
            return fn

        return deco

    def get(self, path, description="", public=False, **kw):
        return self.register(path, "GET", description, public, **kw)

    def post(self, path, description="", public=False, **kw):
        return self.register(path, "POST", description, public, **kw)

    def put(self, path, description="", public=False, **kw):
        return self.register(path, "PUT", description, public, **kw)

    def delete(self, path, description="", public=False, **kw):
        return self.register(path, "DELETE", description, public, **kw)

    def patch(self, path, description="", public=False, **kw):
        return self.register(path, "PATCH", description, public, **kw)

    def response(self, status=200, body=None, headers=None):
        return Response(status, body, headers)

    def clear_all(self):
        handlers.clear_kind("route")
