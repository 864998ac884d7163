"""Checkpoints are atomic, ordered, pruned, and loaded with weights_only."""
import torch

from gnnsys.train import checkpoint


def test_save_list_and_prune(tmp_path):
    for epoch in range(5):
        checkpoint.save_checkpoint(str(tmp_path), epoch, {"epoch": epoch, "w": torch.ones(2) * epoch})
    names = [p.name for p in checkpoint.list_checkpoints(str(tmp_path))]
    assert names == [f"ckpt-{e:06d}.pt" for e in (2, 3, 4)]
    path, data = checkpoint.newest_checkpoint_bytes(str(tmp_path))
    assert path.name == "ckpt-000004.pt"
    assert torch.equal(checkpoint.load_bytes(data, "x")["w"], torch.full((2,), 4.0))


def test_damaged_newest_falls_back_to_previous(tmp_path, capsys):
    checkpoint.save_checkpoint(str(tmp_path), 1, {"epoch": 1})
    good = checkpoint.save_checkpoint(str(tmp_path), 2, {"epoch": 2})
    good.write_bytes(good.read_bytes()[:20])  # truncated, as by a crash of the disk
    (tmp_path / ".ckpt-000003.pt.tmp-999").write_bytes(b"half written")
    path, data = checkpoint.newest_checkpoint_bytes(str(tmp_path))
    assert path.name == "ckpt-000001.pt"
    assert checkpoint.load_bytes(data, "x")["epoch"] == 1
    assert "skipping" in capsys.readouterr().out


def test_untrusted_pickle_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    data = pickle.dumps(Evil())
    try:
        checkpoint.load_bytes(data, "evil.pt")
    except Exception as exc:  # noqa: BLE001
        assert "cannot be read" in str(exc)
    else:
        raise AssertionError("a pickle with code was loaded")


def test_empty_folder(tmp_path):
    assert checkpoint.newest_checkpoint_bytes(str(tmp_path / "none")) is None
