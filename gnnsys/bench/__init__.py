"""gnnsys.bench: the benchmark suites behind ``gnnsys bench`` and the Performance report.

One module per suite (``codec``, ``compute``, ``partition``, ``memory``, ``exchange``,
``accuracy``, ``batching``, ``preload``: each ``run(opts) -> dict``, ``plot``, ``markdown``), :mod:`~gnnsys.bench.runner`
(runs suites, writes ``<out>/<suite>-<date>.json``), :mod:`~gnnsys.bench.report` (the markdown
report from the newest results), :mod:`~gnnsys.bench.targets` (every issue target, measured /
target / bound), :mod:`~gnnsys.bench.settings` (the compared training settings),
:mod:`~gnnsys.bench.options`, :mod:`~gnnsys.bench.common` and :mod:`~gnnsys.bench.plots`.
"""
