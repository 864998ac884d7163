"""A fingerprint of the code that trains: which runs a benchmark may reuse.

Two runs with the same :class:`~gnnsys.config.TrainConfig` train differently when the code
changed in between (a new default inside a layer, a fix in the exchange). The metrics file's
first line therefore records :func:`code_fingerprint` next to the configuration, and the
benchmarks reuse a run only when both match.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
#: Sub-packages that do not change what training computes (the benchmark harness).
EXCLUDED = ("bench",)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    """Drop the docstring of every module, class and function of ``tree`` (in place)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=None)
def code_fingerprint(package: Path = PACKAGE) -> str:
    """Return a 16-hex-digit hash of the syntax trees of ``package``'s Python files (default:
    the installed gnnsys), sub-packages in :data:`EXCLUDED` left out.

    Comments, docstrings, blank lines and formatting do not change it; any change to code does.
    """
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] in EXCLUDED:
            continue
        tree = _strip_docstrings(ast.parse(path.read_text(), filename=str(path)))
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(ast.dump(tree).encode() + b"\0")
    return digest.hexdigest()[:16]
