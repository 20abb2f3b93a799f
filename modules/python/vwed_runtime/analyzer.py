"""Syntax checks for the supervisor, which never hosts Python itself."""

import ast

import _vwed


def _analyze(req, source):
    try:
        tree = ast.parse(source, "<script>")
        compile(tree, "<script>", "exec")
    except SyntaxError as e:
        _vwed.analysis(req, (str(e), e.msg or "invalid syntax", e.lineno, e.offset), False)
        return
    except (ValueError, RecursionError, MemoryError) as e:
        text = str(e) or type(e).__name__
        _vwed.analysis(req, (text, text, None, None), False)
        return
    has_boot = any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "boot"
        for node in tree.body
    )
    _vwed.analysis(req, None, has_boot)


def main():
    while True:
        for msg in _vwed.recv_blocking():
            if msg[0] == "analyze":
                _analyze(msg[1], msg[2])
            elif msg[0] in ("stop", "eof"):
                _vwed.exit(0)
