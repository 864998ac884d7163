"""The options of ``gnnsys bench``, shared by every suite, with the full and ``--quick`` sizes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, TypeVar

T = TypeVar("T")
DEFAULT_BANDWIDTHS = ["1gbit", "200mbit", "50mbit"]


@dataclass
class BenchOptions:
    """What a suite runs. ``None`` means the suite's own default (smaller under ``quick``).

    Attributes:
        out: folder of the results (``<suite>-<date>.json`` and PNGs); scratch goes to
            ``out/work``.
        quick: small graphs and few epochs (the whole ``all`` in minutes).
        device: ``cpu`` or ``cuda`` (codec and compute kernels, and ``gnnsys train --device``).
        nodes: graph size (nodes) of the compute and exchange suites.
        sizes: graph sizes of the partition suite.
        bandwidths: link rates of the exchange suite (``tc`` syntax).
        hosts, ranks_per_host: the emulated cluster of the exchange suite.
        settings: keys of the exchange settings to compare (None: all available).
        epochs: training epochs per run (exchange, accuracy) or timed epochs (compute).
        seeds: seeds per dataset and setting of the accuracy suites.
        datasets: dataset specs of the accuracy suites (None: each suite's own list).
        seed: graph and weight seed.
        timeout: seconds allowed to one child process (a training run, a partitioner).
    """

    out: Path = Path("bench")
    quick: bool = False
    device: str = "cpu"
    nodes: Optional[int] = None
    sizes: Optional[List[int]] = None
    bandwidths: List[str] = field(default_factory=lambda: list(DEFAULT_BANDWIDTHS))
    hosts: int = 2
    ranks_per_host: int = 2
    settings: Optional[List[str]] = None
    epochs: Optional[int] = None
    seeds: Optional[int] = None
    datasets: Optional[List[str]] = None
    seed: int = 0
    timeout: float = 900.0

    def pick(self, value: Optional[T], full: T, quick: T) -> T:
        """Return ``value`` when the user gave it, else the ``quick`` or ``full`` default."""
        if value is not None:
            return value
        return quick if self.quick else full

    @property
    def work(self) -> Path:
        """Scratch folder (partitions, metrics, logs) under ``out``, reused across runs."""
        return Path(self.out) / "work"
