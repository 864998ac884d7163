"""Partition a graph into shards on disk: assignment -> shards -> report -> manifest, atomically."""
from __future__ import annotations

import concurrent.futures
import datetime
import os
import resource
import shutil
import time
from typing import Optional

import numpy as np

from gnnsys import __version__
from gnnsys.errors import UserError
from gnnsys.graph import Graph
from gnnsys.partition.assign import assign_parts, check_options
from gnnsys.partition.format import (FORMAT_VERSION, MANIFEST, ArrayWriter, PartitionError,
                                     write_manifest)
from gnnsys.partition.preload import build_preloads, check_preload_options
from gnnsys.partition.report import make_report
from gnnsys.partition.shard import build_shards, release_pages


def _prepare_output(out: str, overwrite: bool) -> str:
    """Check ``out`` can be (re)placed; create and return the hidden temporary sibling folder."""
    if os.path.lexists(out):
        if not overwrite:
            raise PartitionError(f"{out}: already exists; pass --overwrite to replace it")
        if not os.path.isdir(out) or (os.listdir(out) and
                                      not os.path.isfile(os.path.join(out, MANIFEST))):
            raise PartitionError(f"{out}: exists and is not a gnnsys partition folder; "
                                 "refusing to replace it")
    parent, name = os.path.split(os.path.abspath(out))
    tmp = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
    try:
        os.makedirs(parent, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp)
    except OSError as exc:
        raise UserError(f"{parent}: cannot write the output folder there "
                        f"({exc.strerror or exc})") from None
    return tmp


def _publish(tmp: str, out: str) -> None:
    """Move the finished ``tmp`` folder to ``out``, replacing an old partition there."""
    old = None
    if os.path.lexists(out):
        parent, name = os.path.split(os.path.abspath(out))
        old = os.path.join(parent, f".{name}.old-{os.getpid()}")
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old)


def _dataset_entry(graph: Graph) -> dict:
    """Return the manifest's ``dataset`` entry (hashes the whole graph), then drop the
    memory-mapped feature pages the hash read (see ``release_pages``)."""
    entry = {"name": graph.name, "content_hash": graph.content_hash(),
             "num_nodes": graph.num_nodes, "num_edges": graph.num_edges,
             "num_features": graph.num_features, "num_classes": graph.num_classes,
             "num_train": int(graph.train_mask.sum()), "num_val": int(graph.val_mask.sum()),
             "num_test": int(graph.test_mask.sum())}
    release_pages(graph.feat)
    return entry


def _check_assignment(assignment, num_nodes: int, parts: int, servers: int) -> np.ndarray:
    """Return a given assignment as int64 [N]; UserError unless every node has a part in
    ``[0, parts)`` and no part is empty."""
    check_options(num_nodes, parts, servers, "random")
    assignment = np.asarray(assignment)
    if assignment.shape != (num_nodes,) or assignment.dtype.kind not in "iu":
        raise UserError(f"assignment must be integers of shape [{num_nodes}], got "
                        f"{assignment.dtype} {tuple(assignment.shape)}")
    counts = np.bincount(assignment.clip(0, parts), minlength=parts + 1)
    if assignment.min() < 0 or counts[parts] or not counts[:parts].all():
        raise UserError(f"assignment must give every node a part in [0, {parts}) and every "
                        "part at least one node")
    return assignment.astype(np.int64, copy=False)


def peak_rss_bytes() -> int:
    """Return the peak resident memory of this process so far, in bytes (Linux ``ru_maxrss``)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def partition_graph(graph: Graph, parts: int, out: str, servers: int = 1,
                    method: str = "metis", seed: int = 0, overwrite: bool = False,
                    command: str = "", progress: bool = True, undirected: bool = False,
                    assignment: Optional[np.ndarray] = None, preload_hops: int = 2,
                    ext_fanout: int = -1) -> dict:
    """Partition ``graph`` into ``parts`` shards written to the folder ``out``.

    ``servers`` S > 1 makes a two-level partition (part k on server k // (parts / S));
    ``method``: ``"metis"`` or ``"random"``; ``seed`` makes it deterministic; ``overwrite``
    replaces an existing partition at ``out``; ``command`` and ``undirected`` are recorded in
    the manifest. ``assignment`` (int64 [N], the part of every node; no part empty)
    replaces the computed one and ``method`` then only names its origin in the manifest (a
    converted DistDGL partition: ``"distdgl"``). With S > 1 and ``preload_hops`` L > 0 each
    server's external dependencies within L hops are written to ``server-<s>/`` (``ext_fanout``
    f >= 0: at most f sampled external in-neighbours per node per hop; see
    :mod:`gnnsys.partition.preload`). The output appears only when complete (built
    in a hidden sibling folder, then renamed). Returns ``{"out": out, "report": quality report (see
    :mod:`gnnsys.partition.report`), "timings": {"assign", "relabel_halo", "write", "preload",
    "total" seconds, "peak_rss_bytes"}}`` ("write" includes waiting for the dataset hash, which runs
    in a thread during "assign"). Raises :class:`UserError` for bad options or an unusable
    output folder.
    """
    check_preload_options(preload_hops, ext_fanout)
    if assignment is None:
        check_options(graph.num_nodes, parts, servers, method)
    else:
        assignment = _check_assignment(assignment, graph.num_nodes, parts, servers)
    start = time.perf_counter()
    tmp = _prepare_output(out, overwrite)
    try:
        # Hash the dataset in a thread while METIS runs (both release the GIL): on 2 cores
        # the hash then costs no wall time.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            hashing = pool.submit(_dataset_entry, graph)
            clock = time.perf_counter()
            if assignment is None:
                assignment = assign_parts(graph, parts, servers, method, seed, progress)
            t_assign = time.perf_counter() - clock
            dataset = hashing.result()
        t_hash = time.perf_counter() - clock - t_assign
        part_server = np.arange(parts, dtype=np.int64) // (parts // servers)
        writer = ArrayWriter(tmp)
        built = build_shards(graph, assignment, parts, part_server, writer, progress)
        clock = time.perf_counter()
        preload = None
        if servers > 1 and preload_hops > 0:
            preload = build_preloads(graph, part_server[assignment], servers, preload_hops,
                                     ext_fanout, seed, writer, progress)
        t_preload = time.perf_counter() - clock
        clock = time.perf_counter()
        writer.save("assignment.npy", assignment)
        report = make_report(built["parts"], built["server_halo"], part_server,
                             graph.num_nodes, graph.num_edges, preload)
        write_manifest(tmp, {
            "format_version": FORMAT_VERSION, "gnnsys_version": __version__,
            "dataset": dataset, "method": method, "parts": parts,
            "servers": servers, "part_server": part_server.tolist(), "seed": seed,
            "undirected": undirected, "command": command,
            **({"preload": {"hops": preload_hops, "ext_fanout": ext_fanout, "seed": seed}}
               if preload else {}),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "files": writer.files, "report": report})
        _publish(tmp, out)
        t_write = t_hash + built["timings"]["write"] + time.perf_counter() - clock
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    timings = {"assign": t_assign, "relabel_halo": built["timings"]["relabel_halo"],
               "write": t_write, "preload": t_preload, "total": time.perf_counter() - start,
               "peak_rss_bytes": peak_rss_bytes()}
    return {"out": out, "report": report, "timings": timings}
