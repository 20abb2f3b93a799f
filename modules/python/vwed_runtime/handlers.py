"""The callables a script registered, and how arguments reach them."""

import ast
import inspect
import json
import sys

import _vwed

from vwed_runtime.core import schedule_flush
from vwed_runtime.errors import VWEDArgumentError

handlers = []  # handler id -> callable
arity = []  # handler id -> how it takes arguments, see positional_params
kinds = {}  # handler id -> registration kind, for clear_all()
local_functions = {}  # function name -> handler id, for calls within this script


class Undefined:
    """What an undefined global name evaluates to in a script: it raises the usual
    NameError as soon as it is used (called, tested, printed, looked into), but it
    can be passed along first. The seed's template registers handlers it never
    defines; boot() succeeds and only a call to such a handler fails."""

    __slots__ = ("_name",)

    def __init__(self, name):
        object.__setattr__(self, "_name", name)

    def _fail(self, *_a, **_k):
        raise NameError(f"name '{object.__getattribute__(self, '_name')}' is not defined")

    __call__ = __bool__ = __str__ = __iter__ = __len__ = __int__ = __float__ = _fail
    __getitem__ = __add__ = __sub__ = __mul__ = __truediv__ = __lt__ = __gt__ = _fail
    __le__ = __ge__ = __contains__ = __hash__ = __index__ = __await__ = _fail

    def __getattr__(self, attr):
        # Introspection (inspect, copy, pickle) probes dunder names with hasattr().
        if attr.startswith("_"):
            raise AttributeError(attr)
        self._fail()

    def __repr__(self):
        return f"<undefined name {object.__getattribute__(self, '_name')!r}>"


def positional_params(fn):
    """How a callable takes arguments: (number of named parameters, whether that one
    parameter can take a dict positionally, has **kwargs)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1, True, False
    named = 0
    positional = 0
    var_kw = False
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            named += 1
            positional += 1
        elif p.kind == p.KEYWORD_ONLY:
            named += 1
        elif p.kind == p.VAR_KEYWORD:
            var_kw = True
        elif p.kind == p.VAR_POSITIONAL:
            positional += 1
    return named, positional >= 1, var_kw


def add(fn, kind):
    if isinstance(fn, Undefined):
        print(f"警告: 注册的处理函数 {fn!r} 未定义, 调用时将报 NameError", file=sys.stderr)
    elif not callable(fn):
        raise VWEDArgumentError(f"handler must be callable, got {type(fn).__name__}")
    hid = len(handlers)
    handlers.append(fn)
    arity.append((1, True, False) if isinstance(fn, Undefined) else positional_params(fn))
    kinds[hid] = kind
    return hid


def clear_kind(kind):
    for hid, k in list(kinds.items()):
        if k == kind:
            _vwed.unregister(kind, hid)
            del kinds[hid]
            if kind == "function":
                for name, h in list(local_functions.items()):
                    if h == hid:
                        del local_functions[name]
    schedule_flush()


def _parse_string_args(s):
    """A string argument is JSON or a Python literal; it is never evaluated."""
    text = s.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return s


def call_with_args(hid, args):
    """The argument rules of a function call: a dict is one argument when the
    function takes exactly one parameter, else keyword arguments; a list is
    positional arguments; a string is parsed as JSON or a Python literal first."""
    fn = handlers[hid]
    named, takes_positional, var_kw = arity[hid]
    if isinstance(args, str):
        args = _parse_string_args(args)
    if isinstance(args, dict):
        if named == 1 and takes_positional and not var_kw:
            return fn(args)
        return fn(**args)
    if isinstance(args, (list, tuple)):
        return fn(*args)
    if args is None:
        if named >= 1 and takes_positional:
            return fn({})
        return fn()
    return fn(args)


def did_not_bind(exc):
    """True when ``exc`` is the TypeError of arguments that did not fit the
    function's signature: raised by the call in call_with_args itself, before the
    function's body ran (whose frames would come after it)."""
    if not isinstance(exc, TypeError):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code is call_with_args.__code__


def signature_text(hid):
    fn = handlers[hid]
    name = getattr(fn, "__name__", "function")
    try:
        return f"{name}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return f"{name}(...)"


def call_handler(hid, arg):
    """Route, event and timer handlers take the request/event data, or nothing."""
    fn = handlers[hid]
    _named, takes_positional, _ = arity[hid]
    if takes_positional:
        return fn(arg)
    return fn()
