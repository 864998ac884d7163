"""The ``gnnsys`` entry point: argument pre-processing before argparse."""
from gnnsys.cli import build_parser, join_negative_lists


def test_negative_comma_list_is_joined_to_its_flag():
    argv = ["train", "p", "--fanouts", "-1,25", "--epochs", "3"]
    assert join_negative_lists(argv) == ["train", "p", "--fanouts=-1,25", "--epochs", "3"]


def test_plain_values_and_joined_flags_are_left_alone():
    for argv in (["train", "p", "--fanouts", "-1"], ["train", "p", "--fanouts=-1,25"],
                 ["train", "p", "--fanouts", "10,25"], ["-1,25"]):
        assert join_negative_lists(argv) == argv


def test_train_parses_a_fanout_list_starting_with_minus_one():
    args = build_parser().parse_args(join_negative_lists(["train", "p", "--fanouts", "-1,25"]))
    assert args.fanouts == "-1,25"
