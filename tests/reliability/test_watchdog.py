"""The watchdog aborts once when beats stop, stays quiet while they come, and can be disabled."""
import time

from gnnsys.comm.watchdog import Watchdog


def test_fires_once_when_progress_stops(capsys):
    codes = []
    with Watchdog(0.2, rank=0, abort=codes.append, poll_s=0.05, first_epoch_factor=1) as dog:
        dog.beat("epoch 7 layer 1")
        time.sleep(0.8)
    assert codes == [1] and dog.fired
    err = capsys.readouterr().err
    assert err.count("no progress") == 1 and "epoch 7 layer 1" in err and "(rank 0)" in err


def test_quiet_while_beating():
    codes = []
    with Watchdog(0.3, abort=codes.append, poll_s=0.05) as dog:
        for i in range(10):
            dog.beat(f"step {i}")
            time.sleep(0.05)
    assert codes == [] and not dog.fired


def test_zero_timeout_disables():
    codes = []
    with Watchdog(0, abort=codes.append) as dog:
        time.sleep(0.1)
    assert dog._thread is None and codes == []


def test_first_epoch_gets_longer_then_the_limit_follows_the_slowest_epoch():
    codes = []
    with Watchdog(0.2, abort=codes.append, poll_s=0.05, first_epoch_factor=5) as dog:
        time.sleep(0.6)  # epoch 0: the limit is 1.0 s
        assert codes == []
        dog.epoch_done(0.3)  # now max(0.2, 3 x 0.3) = 0.9 s
        dog.beat("epoch 1")
        time.sleep(0.6)
        assert codes == [] and abs(dog.limit_s - 0.9) < 1e-9
        dog.epoch_done(0.01)  # the slowest epoch still counts
        assert abs(dog.limit_s - 0.9) < 1e-9
        time.sleep(1.2)
    assert codes == [1]
