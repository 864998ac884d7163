"""Runs suites: each writes ``<out>/<suite>-<date>.json`` (``-quick`` for quick runs) and PNGs.

A suite is a module of this package with ``NAME``, ``run(opts) -> dict``, ``plot(result,
stem) -> [png paths]`` and ``markdown(result) -> str``. The runner adds what every result
carries: suite, date, quick, the command, the machine, wall time and load while it ran.
"""
from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Dict, List

from gnnsys.bench.common import LoadSampler, machine, result_path, today, write_result
from gnnsys.bench.options import BenchOptions
from gnnsys.errors import RuntimeFailure, UserError

SUITES = ("codec", "compute", "partition", "memory", "exchange", "accuracy", "batching",
          "preload")  # `all`, in order


def suite_module(name: str) -> ModuleType:
    """Return the module of suite ``name`` (one of :data:`SUITES`)."""
    if name not in SUITES:
        raise UserError(f"unknown suite {name!r}; known: {', '.join(SUITES)}, all")
    return importlib.import_module(f"gnnsys.bench.{name}")


def run_suite(name: str, opts: BenchOptions, command: str) -> Path:
    """Run suite ``name``; write its JSON and plots under ``opts.out``; print its table;
    return the JSON path."""
    module = suite_module(name)
    print(f"== gnnsys bench {name}{' (quick)' if opts.quick else ''}", file=sys.stderr,
          flush=True)
    start = time.perf_counter()
    with LoadSampler() as load:
        data = module.run(opts)
    result = {"suite": name, "date": today(), "quick": opts.quick, "command": command,
              "device": opts.device, "machine": machine(),
              "wall_s": round(time.perf_counter() - start, 1), "load": load.summary(), **data}
    path = result_path(Path(opts.out), name, opts.quick)
    write_result(path, result)
    result["plots"] = [p.name for p in module.plot(result, path.with_suffix(""))]
    write_result(path, result)
    print(module.markdown(result))
    print(f"{name}: {path} ({', '.join(result['plots'])}), {result['wall_s']:.0f} s, load "
          f"{result['load']['mean']}", flush=True)
    return path


def run_many(names: List[str], opts: BenchOptions, command: str) -> Dict[str, str]:
    """Run ``names`` one after the other; a suite that cannot run here (a :class:`UserError`
    such as no network namespaces: ``"not run: why"``) or fails (a :class:`RuntimeFailure`:
    ``"failed: why"``) is reported and the others still run. Return ``suite -> JSON path or
    the reason it has none``."""
    done: Dict[str, str] = {}
    for name in names:
        try:
            done[name] = str(run_suite(name, opts, command))
        except (UserError, RuntimeFailure) as exc:
            done[name] = f"{'not run' if isinstance(exc, UserError) else 'failed'}: {exc}"
            print(f"gnnsys bench {name}: {done[name]}", file=sys.stderr, flush=True)
    return done
