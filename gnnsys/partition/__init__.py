"""gnnsys.partition: the offline partitioner and the on-disk shard format.

``partition_graph(graph, parts, out, ...)`` writes a partition folder; trainers read it with
``open_shard(folder, part)``; ``verify_partition(folder)`` checks a whole folder. The layout
is documented in :mod:`gnnsys.partition.format`.
"""
from gnnsys.partition.api import partition_graph
from gnnsys.partition.assign import METHODS, assign_parts
from gnnsys.partition.format import (FORMAT_VERSION, PartitionError, Shard, load_manifest,
                                     open_shard, verify_partition)
from gnnsys.partition.report import format_report

__all__ = ["FORMAT_VERSION", "METHODS", "PartitionError", "Shard", "assign_parts",
           "format_report", "load_manifest", "open_shard", "partition_graph", "verify_partition"]
