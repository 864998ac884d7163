"""Every training option, once: a dataclass, its command-line flags and its YAML form.

Precedence: command-line flag > YAML ``--config`` file > the default written here. The
effective configuration is saved next to the results (``config.yaml`` in the checkpoint
folder and the first line of the metrics file), so every run can be repeated.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from gnnsys.errors import UserError


def _opt(default: Any, help: str, choices: Optional[tuple] = None, flag: Optional[str] = None):
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag})


@dataclass
class TrainConfig:
    """The options of ``gnnsys train`` (one field per flag; see ``gnnsys train --help``)."""

    partition: str = _opt("", "partition folder written by `gnnsys partition`")
    model: str = _opt("gcn", "built-in model: every layer of this kind",
                      ("gcn", "sage", "gat", "gin"))
    layer: Optional[str] = _opt(None, "a user's layer instead of --model: 'package.module:Class' "
                                "or 'path/to/file.py:Class' (PyG MessagePassing and DGL "
                                "GraphConv/SAGEConv/GATConv classes are wrapped automatically); "
                                "built as Class(in_dim, out_dim)")
    layers: int = _opt(2, "number of GNN layers")
    hidden: int = _opt(16, "hidden width")
    heads: int = _opt(8, "attention heads of the hidden GAT layers (hidden must be divisible)")
    dropout: float = _opt(0.5, "dropout on the input of every layer (rank-independent masks)")
    normalize_features: str = _opt("none", "input feature preprocessing on each rank: none, or "
                                   "row (divide each node's features by their L1 norm, as in "
                                   "Kipf & Welling; exact in any partition)", ("none", "row"))
    epochs: int = _opt(200, "training epochs (full-graph: one step per epoch)")
    lr: float = _opt(0.01, "learning rate")
    weight_decay: float = _opt(5e-4, "L2 weight decay")
    optimizer: str = _opt("adam", "optimizer", ("adam", "sgd"))
    seed: int = _opt(0, "seed of weights and dropout masks")
    dtype: str = _opt("float32", "floating point type of weights and activations",
                      ("float32", "float64"))
    device: str = _opt("cpu", "compute device", ("cpu", "cuda"))
    backend: str = _opt("mpi", "exchange backend: mpi (mpi4py, CPU default, full duplex) or "
                        "torch (torch.distributed: gloo on CPU, NCCL on CUDA)", ("mpi", "torch"))
    bits: int = _opt(32, "bits per element of halo rows and halo gradients on every link: 1, 2, "
                     "4, 8 (stochastic row-wise quantization), 16 (fp16) or 32 (exact)",
                     (1, 2, 4, 8, 16, 32))
    intra_bits: Optional[int] = _opt(None, "bits on links inside a server (default: --bits)",
                                     (1, 2, 4, 8, 16, 32))
    inter_bits: Optional[int] = _opt(None, "bits on links between servers (default: --bits)",
                                     (1, 2, 4, 8, 16, 32))
    staleness: int = _opt(0, "bound s on the age (epochs) of the halo rows (and, with "
                          "--stale-grads, halo gradients) a layer may use; 0 = synchronous, "
                          "s >= 1 = asynchronous exchange")
    sync_every: int = _opt(0, "with --staleness: a fresh, exact, synchronous epoch every N "
                           "epochs (0 = only the first)")
    stale_grads: bool = _opt(False, "with --staleness: halo gradients may be up to s epochs old "
                             "too, their exchange overlapping later epochs (PipeGCN); they then "
                             "meet another epoch's dropout masks, which cost 0.24 pp of test "
                             "accuracy on synthetic:50000 at 1 bit. Default: halo gradients "
                             "return within the epoch that made them")
    pipeline: bool = _opt(False, "run the halo exchange on a communication thread, overlapped "
                          "with computation (implies --staleness 1 when it is 0)")
    mode: str = _opt("exchange", "exchange: layer-wise halo exchange with every part that holds "
                     "a neighbour; preload: each server reads the external neighbours its "
                     "partition preloaded (--servers/--preload-hops of `gnnsys partition`), so "
                     "only weight gradients cross servers", ("exchange", "preload"))
    batch_size: str = _opt("full", "seed nodes per server per step: full (one exact step per "
                           "epoch) or N (minibatches reshuffled every epoch)")
    fanouts: str = _opt("-1", "sampled in-neighbours per layer, input layer first, e.g. 10,25; "
                        "-1 = all (one value applies to every layer)")
    input_halo_cache: bool = _opt(True, "do not cache the halo rows of the input features "
                                  "(fetched once, exact; their dropout masks are recomputed "
                                  "from global IDs) but exchange them every epoch like the "
                                  "other layers' rows (full-graph exchange mode)",
                                  flag="--no-input-halo-cache")
    halo_pruning: bool = _opt(True, "exchange every halo row in training, not only those the "
                              "loss reads (full batches: layer l needs its rows within L-1-l "
                              "hops of a train node; exact for message-passing layers, whose "
                              "output row depends on its own row and its in-neighbours'; turn "
                              "it off for a layer that mixes rows otherwise, e.g. batch norm "
                              "over rows)", flag="--no-halo-pruning")
    control_variate: bool = _opt(True, "do not give a sampled GCN input layer the exact "
                                 "full-neighbourhood aggregate of the features as a control "
                                 "variate (exchange mode; without it the sampled edges add "
                                 "variance: -2.5 pp on synthetic:50000 at fanouts 10,25)",
                                 flag="--no-control-variate")
    ranks_per_server: int = _opt(0, "group consecutive ranks into servers of N ranks instead "
                                 "of by host (0 = by host; to emulate servers on one machine)")
    eval_every: int = _opt(1, "evaluate val/test accuracy every N epochs (and at the last)")
    metrics: Optional[str] = _opt(None, "write one JSON line per epoch to this file (rank 0)")
    save_predictions: Optional[str] = _opt(None, "write predicted classes to this .npy, "
                                           "indexed by ORIGINAL node ID (-1 where absent)")
    checkpoint_dir: Optional[str] = _opt(None, "folder for checkpoints")
    checkpoint_every: int = _opt(0, "write a checkpoint every N epochs (0 = only at the end "
                                 "when --checkpoint-dir is set)")
    resume: bool = _opt(False, "resume from the newest complete checkpoint in --checkpoint-dir")
    progress: bool = _opt(True, "show a progress bar on rank 0", flag="--no-progress")
    threads: int = _opt(0, "torch intra-op threads per rank (0 = cores / ranks on this host)")
    malloc: str = _opt("release", "what glibc's malloc does with freed tensor memory: release "
                       "(return every block of 1 MiB or more to the OS at once: the lowest "
                       "peak) or keep (reuse it next epoch: about 1.3x faster CPU epochs, "
                       "1.2-1.9x the peak memory); MALLOC_* environment variables take "
                       "precedence", ("release", "keep"))
    timeout: float = _opt(120.0, "abort the whole job when a rank makes no progress (waits in "
                          "an exchange or collective) for this many seconds: a peer died or "
                          "hangs (5x this until the first epoch ends; at least 3x the slowest "
                          "epoch; 0 = wait forever)")

    def validate(self) -> "TrainConfig":
        """Check ranges and combinations; return self or raise :class:`UserError`."""
        if not self.partition:
            raise UserError("no partition folder given")
        for name in ("layers", "hidden", "epochs", "eval_every", "heads"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError("--dropout must be in [0, 1)")
        if self.lr <= 0:
            raise UserError("--lr must be > 0")
        if self.checkpoint_every < 0 or self.threads < 0:
            raise UserError("--checkpoint-every and --threads must be >= 0")
        if not self.timeout >= 0:
            raise UserError("--timeout must be >= 0 seconds")
        if (self.resume or self.checkpoint_every) and not self.checkpoint_dir:
            raise UserError("--resume and --checkpoint-every need --checkpoint-dir")
        if self.staleness < 0 or self.sync_every < 0:
            raise UserError("--staleness and --sync-every must be >= 0")
        if self.pipeline and self.staleness == 0:
            self.staleness = 1
        if self.stale_grads and self.staleness == 0:
            raise UserError("--stale-grads needs --staleness >= 1 (or --pipeline)")
        if self.pipeline and self.backend != "mpi":
            raise UserError("--pipeline needs --backend mpi")
        if self.ranks_per_server < 0:
            raise UserError("--ranks-per-server must be >= 0")
        if self.minibatch and (self.staleness or self.pipeline):
            raise UserError("--staleness and --pipeline need full-graph steps (--batch-size "
                            "full --fanouts -1): stale halo rows are reused across epochs")
        if self.model == "gat" and self.layer is None and self.hidden % self.heads:
            raise UserError(f"--hidden {self.hidden} is not divisible by --heads {self.heads}")
        return self

    @property
    def batch_seeds(self) -> Optional[int]:
        """Seeds per server per step, or None for full-graph steps (parsed ``--batch-size``)."""
        from gnnsys.train.batcher import parse_batch_size

        return parse_batch_size(self.batch_size)

    @property
    def fanout_list(self) -> list:
        """Parsed ``--fanouts``: one int per layer, -1 = all in-neighbours."""
        from gnnsys.train.sampler import parse_fanouts

        return parse_fanouts(self.fanouts, self.layers)

    @property
    def minibatch(self) -> bool:
        """True when steps are sampled minibatches (a batch size or a fanout is set)."""
        return self.batch_seeds is not None or any(f != -1 for f in self.fanout_list)

    def to_dict(self) -> dict:
        """Return the options as a plain dict (what is saved with the results)."""
        return dataclasses.asdict(self)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per :class:`TrainConfig` field (plus ``--config``) to ``parser``.

    Flags default to ``argparse.SUPPRESS`` so that only the flags a user typed override the
    YAML file; the help text shows the real default.
    """
    parser.add_argument("partition", nargs="?", default=argparse.SUPPRESS,
                        help="partition folder written by `gnnsys partition`")
    parser.add_argument("--config", default=None,
                        help="YAML file with any of the options below (flags override it)")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "partition":
            continue
        meta = f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        help_text = f"{meta['help']} (default: {f.default})"
        if f.type in ("bool", bool):
            action = "store_false" if f.default else "store_true"
            parser.add_argument(flag, dest=f.name, action=action, default=argparse.SUPPRESS,
                                help=help_text)
            continue
        kind = {"int": int, "float": float, "Optional[int]": int}.get(str(f.type), str)
        parser.add_argument(flag, dest=f.name, type=kind, choices=meta.get("choices"),
                            default=argparse.SUPPRESS, help=help_text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Merge defaults, the YAML ``--config`` file and typed flags; return a validated config."""
    values: dict = {}
    if getattr(args, "config", None):
        values.update(load_yaml(args.config))
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    return TrainConfig(**values).validate()


def load_yaml(path: str) -> dict:
    """Read a YAML config file into a dict of known options; raise :class:`UserError` if bad."""
    import yaml

    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"config {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a mapping of option: value")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise UserError(f"config {path}: unknown option '{key}'")
        out[name] = _coerce(fields[name], value, path)
    return out


def _coerce(f: dataclasses.Field, value: Any, path: str) -> Any:
    kind = str(f.type)
    try:
        if value is None:
            return None
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind in ("int", "Optional[int]"):
            if isinstance(value, bool) or int(value) != value:
                raise ValueError
            value = int(value)
        elif kind == "float":
            value = float(value)
        else:
            value = str(value)
    except (TypeError, ValueError):
        raise UserError(f"config {path}: option '{f.name}' has a bad value {value!r}") from None
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise UserError(f"config {path}: option '{f.name}' must be one of {', '.join(map(str, choices))}")
    return value
