"""The global ``VWED`` object a script uses, assembled from the areas."""

from vwed_runtime import errors
from vwed_runtime.api import Api
from vwed_runtime.core import state
from vwed_runtime.devices import Device, Io, Robot
from vwed_runtime.events import Event, Timer
from vwed_runtime.functions import Function
from vwed_runtime.integrations import Http, Mail, Storage, Task
from vwed_runtime.logdata import Data, Log, Util


class _VWED:
    def __init__(self):
        self.api = Api()
        self.function = Function()
        self.event = Event()
        self.timer = Timer()
        self.log = Log()
        self.data = Data()
        self.util = Util()
        self.io = Io()
        self.device = Device()
        self.robot = Robot()
        self.task = Task()
        self.storage = Storage()
        self.http = Http()
        self.mail = Mail()
        self.errors = errors.Errors()
        self.Error = errors.VWEDError

    def get_script_id(self):
        return state.script_id

    def __repr__(self):
        return f"<VWED script_id={state.script_id!r}>"


VWED = _VWED()
