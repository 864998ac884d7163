"""Run ``gnnsys`` under mpirun with one fault injected: used by tests/reliability.

Usage: python _fault_worker.py MODE EPOCH RANK STAMP -- GNNSYS_ARGS...

MODE, done by world rank RANK when training reaches epoch EPOCH:
  kill        write time.time() to STAMP, then SIGKILL itself
  stop        write time.time() to STAMP, then SIGSTOP itself (a hung rank)
  interrupt   (after that epoch's checkpoint) send SIGINT to mpirun, as Ctrl-C does
  crash-save  while writing the checkpoint of epoch EPOCH: cut the half-written file in half
              and SIGKILL itself before it is renamed into place
"""
import os
import signal
import sys
import time

from gnnsys.cli import main
from gnnsys.train import checkpoint
from gnnsys.train.loop import Trainer


def _stamp(path: str) -> None:
    with open(path, "w") as fh:
        fh.write(repr(time.time()))


def inject(mode: str, epoch: int, rank: int, stamp: str) -> None:
    """Patch the training code so that this process does ``mode`` at ``epoch``."""
    if int(os.environ.get("OMPI_COMM_WORLD_RANK", "0")) != rank:
        return
    if mode in ("kill", "stop", "interrupt"):
        train_epoch = Trainer.train_epoch

        def faulty(self, current):
            if current == epoch and mode == "interrupt":
                os.kill(os.getppid(), signal.SIGINT)
            elif current == epoch:
                _stamp(stamp)
                os.kill(os.getpid(), signal.SIGKILL if mode == "kill" else signal.SIGSTOP)
            return train_epoch(self, current)

        Trainer.train_epoch = faulty
    elif mode == "crash-save":
        save, fsync = checkpoint.save_checkpoint, os.fsync

        def crash_in_fsync(fd):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            _stamp(stamp)
            os.kill(os.getpid(), signal.SIGKILL)

        def faulty_save(folder, current, state):
            if current == epoch:
                os.fsync = crash_in_fsync
            try:
                return save(folder, current, state)
            finally:
                os.fsync = fsync

        checkpoint.save_checkpoint = faulty_save
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    mode, epoch, rank, stamp, sep, *args = sys.argv[1:]
    assert sep == "--"
    inject(mode, int(epoch), int(rank), stamp)
    sys.exit(main(args))
