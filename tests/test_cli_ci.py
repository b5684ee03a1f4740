"""The command line in CI: sub-command usage on errors, a line before simulating, heartbeats off a
terminal, ``check --out``, ``--format json``, ``--scheduler`` and replications that reuse run 1."""

from __future__ import annotations

import pytest

from memstack_capacity.cli import main


def test_an_unknown_option_prints_the_commands_usage_not_the_top_level_one(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", "tests/data/minimal.yaml", "--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m memstack_capacity check " in err
    assert "check: error: unrecognized arguments: --bogus" in err
