"""``VWED.task``, ``VWED.storage``, ``VWED.http`` and ``VWED.mail``."""

from vwed_runtime.core import call, call_async
from vwed_runtime.errors import VWEDArgumentError

# The supervisor bounds these calls with its own timeouts (task_server_timeout_ms,
# http_max_timeout_ms, smtp_timeout_ms) and always answers; this wait only guards
# against a supervisor that is gone.
_SERVICE_WAIT = 630.0


def _task_id(task_id):
    """Task ids travel as text; an int id becomes its decimal string."""
    if isinstance(task_id, bool) or not isinstance(task_id, (str, int)):
        raise VWEDArgumentError(f"task_id must be a string or an int, got {task_id!r}")
    return str(task_id)


class Task:
    """Task variables kept on this device, and the central task server
    (config task_server_url)."""

    def get_variables(self, task_id):
        return call("task.get_variables", {"task_id": _task_id(task_id)})

    def set_variable(self, task_id, name, value):
        args = {"task_id": _task_id(task_id), "name": str(name), "value": value}
        call("task.set_variable", args)

    def create(self, task_label, input_params=None):
        args = {"task_label": str(task_label), "input_params": input_params or {}}
        return call("task.create", args, _SERVICE_WAIT)

    def get_status(self, task_id):
        return call("task.get_status", {"task_id": _task_id(task_id)}, _SERVICE_WAIT)

    def stop(self, task_id):
        return call("task.stop", {"task_id": _task_id(task_id)}, _SERVICE_WAIT)

    def execute(self, task_id, input_params=None):
        args = {"task_id": _task_id(task_id), "input_params": input_params or {}}
        return call("task.execute", args, _SERVICE_WAIT)

    # The async names of seed 001 §5.7.
    async def create_task(self, task_label, input_params=None):
        args = {"task_label": str(task_label), "input_params": input_params or {}}
        return await call_async("task.create", args)

    async def execute_task(self, task_id, input_params=None):
        args = {"task_id": _task_id(task_id), "input_params": input_params or {}}
        return await call_async("task.execute", args)

    async def get_task_status(self, task_id):
        return await call_async("task.get_status", {"task_id": _task_id(task_id)})

    async def stop_task(self, task_id):
        return await call_async("task.stop", {"task_id": _task_id(task_id)})


class Storage:
    """Warehouse locations, seeded through POST /api/script/storage/locations."""

    def get_location(self, location_code):
        return call("storage.get_location", {"location_code": str(location_code)})

    def list_locations(self, area=None, locked=None, limit=1000):
        args = {"area": area, "locked": locked, "limit": int(limit)}
        return call("storage.list_locations", args)

    def lock_location(self, location_code, task_id):
        """True when ``task_id`` holds the lock now (also when it already did), False
        when another task holds it."""
        args = {"location_code": str(location_code), "task_id": _task_id(task_id)}
        return bool(call("storage.lock_location", args))

    def unlock_location(self, location_code, task_id=None, force=False):
        """True when a lock was released. A ``task_id`` other than the holder's is
        refused unless ``force``; without ``task_id`` any lock is released."""
        args = {"location_code": str(location_code), "force": bool(force)}
        if task_id is not None:
            args["task_id"] = _task_id(task_id)
        return bool(call("storage.unlock_location", args))


class HttpResponse(dict):
    """``{status, headers, json, text, ok}``; the keys also read as attributes."""

    __slots__ = ()

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _http_args(method, url, headers, json_body, data, params, timeout):
    args = {"method": str(method), "url": str(url)}
    if headers:
        args["headers"] = {str(k): str(v) for k, v in dict(headers).items()}
    if json_body is not None:
        args["json"] = json_body
    if data is not None:
        if isinstance(data, (bytes, bytearray)):
            data = bytes(data).decode("utf-8")
        args["data"] = data
    if params:
        args["params"] = dict(params)
    if timeout is not None:
        args["timeout"] = float(timeout)
    return args


class Http:
    """Outgoing HTTP through the runtime, to hosts listed in config http_allow_hosts.
    ``timeout`` is in seconds."""

    def request(self, method, url, headers=None, json=None, data=None, params=None, timeout=None):
        args = _http_args(method, url, headers, json, data, params, timeout)
        return HttpResponse(call("http.request", args, _SERVICE_WAIT))

    def get(self, url, headers=None, params=None, timeout=None, **kw):
        return self.request("GET", url, headers=headers, params=params, timeout=timeout, **kw)

    def post(self, url, headers=None, json=None, data=None, params=None, timeout=None):
        return self.request("POST", url, headers, json, data, params, timeout)

    def put(self, url, headers=None, json=None, data=None, params=None, timeout=None):
        return self.request("PUT", url, headers, json, data, params, timeout)

    def patch(self, url, headers=None, json=None, data=None, params=None, timeout=None):
        return self.request("PATCH", url, headers, json, data, params, timeout)

    def delete(self, url, headers=None, json=None, data=None, params=None, timeout=None):
        return self.request("DELETE", url, headers, json, data, params, timeout)

    async def request_async(
        self, method, url, headers=None, json=None, data=None, params=None, timeout=None
    ):
        args = _http_args(method, url, headers, json, data, params, timeout)
        return HttpResponse(await call_async("http.request", args))

    async def get_async(self, url, headers=None, params=None, timeout=None):
        return await self.request_async("GET", url, headers=headers, params=params, timeout=timeout)

    async def post_async(self, url, headers=None, json=None, data=None, params=None, timeout=None):
        return await self.request_async("POST", url, headers, json, data, params, timeout)


def _recipients(to):
    return [to] if isinstance(to, str) else [str(t) for t in to]


class Mail:
    """Mail through the SMTP server in config (smtp_host, smtp_port, smtp_from, ...)."""

    def send(self, to, subject="", body=""):
        args = {"to": _recipients(to), "subject": str(subject), "body": str(body)}
        return call("mail.send", args, _SERVICE_WAIT)

    def send_with_attachment(self, to, subject="", body="", attachment_path=None):
        """``attachment_path`` is a file in ``attachment_dir()`` (absolute, or relative
        to that directory)."""
        if attachment_path is None:
            raise VWEDArgumentError("send_with_attachment needs attachment_path=")
        args = {
            "to": _recipients(to),
            "subject": str(subject),
            "body": str(body),
            "attachment_path": str(attachment_path),
        }
        return call("mail.send", args, _SERVICE_WAIT)

    def attachment_dir(self):
        """The directory (``<data-dir>/attachments``) attachments must be in."""
        return call("mail.attachment_dir")
