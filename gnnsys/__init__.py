"""gnnsys: distributed GNN training with plain mpirun.

Data path: ``gnnsys.data`` (load a graph) -> ``gnnsys.partition`` (offline shards) ->
``gnnsys.comm`` (MPI bootstrap, halo exchange, codec) -> ``gnnsys.nn`` (layers on a local
block) -> ``gnnsys.train`` (the training loop).
"""
__version__ = "0.1.0"
