"""The Python half of a VWED Edge worker.

One worker process runs one script. The worker loads this module as ``vwed_runtime``;
it makes the module a package whose submodules come from the sources compiled into
the binary (``_vwed.runtime_sources()``), so a worker needs no files on disk:

- ``aio``: asyncio, imported without ssl until something needs it
- ``errors``: ``VWEDError`` and one subclass per kind of failure
- ``core``: shared state, the one way to ask the supervisor for a ``VWED.*`` service
- ``report``: stdout/stderr, tracebacks as one record, repeated errors counted
- ``handlers``: registered callables and how arguments reach them
- ``api``, ``functions``, ``events``, ``logdata``, ``devices``, ``integrations``: the
  ``VWED`` facade by area; ``facade`` assembles the ``VWED`` object
- ``boot``: loading the script and running ``boot()``
- ``job``: running a one-shot job (``PARAMS``, ``main(params)``, its result)
- ``loop``: the dispatch loop serving the supervisor's requests
- ``analyzer``: syntax checks for the supervisor
"""

import importlib.abc
import importlib.util
import sys

import _vwed

__path__ = []  # a package: submodules are found by the finder below

_PREFIX = __name__ + "."


class _EmbeddedSources(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Serves ``vwed_runtime.<name>`` from the sources compiled into the binary."""

    def __init__(self, sources):
        self._sources = sources

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(_PREFIX) or fullname[len(_PREFIX) :] not in self._sources:
            return None
        name = fullname[len(_PREFIX) :]
        return importlib.util.spec_from_loader(fullname, self, origin=f"vwed_runtime/{name}.py")

    def get_source(self, fullname):
        return self._sources[fullname[len(_PREFIX) :]]

    def get_code(self, fullname):
        return compile(self.get_source(fullname), f"vwed_runtime/{fullname[len(_PREFIX):]}.py", "exec")

    def exec_module(self, module):
        module.__file__ = f"vwed_runtime/{module.__name__[len(_PREFIX):]}.py"
        exec(self.get_code(module.__name__), module.__dict__)


sys.meta_path.insert(0, _EmbeddedSources(_vwed.runtime_sources()))


def main():
    from vwed_runtime import loop

    loop.main()


def analyzer_main():
    from vwed_runtime import analyzer

    analyzer.main()
