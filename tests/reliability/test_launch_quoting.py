"""The launch scripts never run a command hidden in a user's string (bash arithmetic included)."""
import os
import subprocess

import pytest

from gnnsys.emulate import SCRIPTS


@pytest.mark.parametrize("script, args, env, code", [
    ("exec", ["10.77.0.EMU_PREFIX[$(touch {canary})]", "true"], {}, 255),
    ("exec", ["h1;touch {canary}", "true"], {}, 255),
    ("mpijob", ["true"], {"EMU_HOSTS": "EMU_PREFIX[$(touch {canary})]"}, 2),
    ("mpijob", ["true"], {"EMU_RANKS_PER_HOST": "EMU_PREFIX[$(touch {canary})]"}, 2),
])
def test_injected_command_is_refused_not_run(tmp_path, script, args, env, code):
    canary = tmp_path / "ran"
    full_env = dict(os.environ, EMU_PREFIX="gsnone", EMU_HOSTS="2", EMU_RANKS_PER_HOST="2",
                    EMU_IPS="10.77.0.11 10.77.0.12", EMU_HOSTFILE=str(tmp_path / "hosts"))
    full_env.update({k: v.format(canary=canary) for k, v in env.items()})
    proc = subprocess.run([str(SCRIPTS / script), *[a.format(canary=canary) for a in args]],
                          env=full_env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == code, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not canary.exists()
