"""A real SIGTERM / SIGINT during ``rsaug train``: a resumable checkpoint, a clear message, and a resume that
ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rsaug.core.runtime import current_stop, stop_on_signals
from rsaug.gan.checkpoint import load_checkpoint

MAIN = "from rsaug.cli.main import cli; cli(prog_name='rsaug')"
STEPS = 24
TINY_CLI = [
    "--steps", str(STEPS), "--crop-size", "32", "--batch-size", "2", "--ngf", "8", "--ndf", "16",
    "--lambda-vgg", "0", "--checkpoint-every", str(STEPS), "--sample-every", "0", "--keep-checkpoints", "0",
    "--threads", "1", "-q",
]  # fmt: skip


def _train(tiles: Path, run: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", MAIN, "train", str(tiles), "-o", str(run), *TINY_CLI, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _steps_logged(run: Path) -> int:
    log = run / "log.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.is_file() else 0


def test_stop_on_signals_turns_a_real_signal_into_a_request() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        assert current_stop() is stop and not stop.requested
        with stop_on_signals() as inner:  # nested blocks share the request
            assert inner is stop
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.time() + 5
        while not stop.requested and time.time() < deadline:
            time.sleep(0.01)
        assert stop.name == "SIGTERM" and stop.exit_code == 143
    assert current_stop() is None and signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_training_saves_a_checkpoint_and_resume_matches(
    gid15_tileset: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    p = _train(gid15_tileset, part)
    deadline = time.time() + 240
    while _steps_logged(part) < 3 and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"stopped by {sig.name} at step" in lines[0] and "--resume" in lines[0] and str(part) in lines[0]
    stopped_at = int(lines[0].split("at step ")[1].split()[0])
    assert 3 <= stopped_at < STEPS
    ck = load_checkpoint(part / "checkpoints" / "last.ckpt")
    assert ck["step"] == stopped_at
    assert not (part / "summary.json").exists()

    r = _train(gid15_tileset, part, "--resume")
    _, err = r.communicate(timeout=600)
    assert r.returncode == 0, err
    u = _train(gid15_tileset, full)
    _, err = u.communicate(timeout=600)
    assert u.returncode == 0, err
    a, b = load_checkpoint(full / "checkpoints" / "last.ckpt"), load_checkpoint(part / "checkpoints" / "last.ckpt")
    assert a["step"] == b["step"] == STEPS
    for net in ("G", "G_ema", "D", "C"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    for k, v in a["opt_G"]["state"].items():
        assert torch.equal(v["exp_avg_sq"], b["opt_G"]["state"][k]["exp_avg_sq"])
    steps = [int(r.split(",")[0]) for r in (part / "log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, STEPS + 1))
