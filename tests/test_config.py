"""Options: defaults, YAML file, flag precedence, and one-line errors for bad values."""
import argparse

import pytest

from gnnsys import config
from gnnsys.errors import UserError


def parse(argv):
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.config_from_args(parser.parse_args(argv))


def test_defaults_and_flags():
    cfg = parse(["parts/x", "--epochs", "7", "--lr", "0.1", "--no-progress"])
    assert (cfg.partition, cfg.epochs, cfg.lr, cfg.progress) == ("parts/x", 7, 0.1, False)
    assert cfg.model == "gcn" and cfg.hidden == 16


def test_yaml_then_flags_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("partition: parts/y\nepochs: 30\nhidden: 64\nmodel: sage\nprogress: false\n")
    cfg = parse(["--config", str(path), "--epochs", "5"])
    assert (cfg.partition, cfg.epochs, cfg.hidden, cfg.model, cfg.progress) == \
        ("parts/y", 5, 64, "sage", False)


@pytest.mark.parametrize("text, needle", [
    ("epochs: [1, 2\n", "not valid YAML"),
    ("- a\n- b\n", "mapping"),
    ("epochz: 3\n", "unknown option 'epochz'"),
    ("epochs: 2.5\n", "bad value"),
    ("model: transformer\n", "must be one of"),
])
def test_bad_yaml_is_one_line_user_error(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=needle) as info:
        parse(["p", "--config", str(path)])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("argv, needle", [
    ([], "no partition"),
    (["p", "--epochs", "0"], "--epochs"),
    (["p", "--dropout", "1.0"], "--dropout"),
    (["p", "--resume"], "--checkpoint-dir"),
    (["p", "--model", "gat", "--hidden", "10", "--heads", "4"], "divisible"),
    (["p", "--stale-grads"], "--stale-grads needs --staleness"),
])
def test_bad_values(argv, needle):
    with pytest.raises(UserError, match=needle):
        parse(argv)


def test_pipeline_implies_staleness_with_same_epoch_gradients():
    cfg = parse(["p", "--pipeline"])
    assert (cfg.staleness, cfg.stale_grads) == (1, False)
    assert parse(["p", "--pipeline", "--stale-grads"]).stale_grads


def test_missing_config_file():
    with pytest.raises(UserError, match="cannot read config"):
        parse(["p", "--config", "/nonexistent/c.yaml"])
