"""Model files never run code: hostile pickles are refused through the CLI, old files load safely, the trusted
conversion and the expected-hash check."""

from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rsaug.cli.main import cli
from rsaug.core.errors import InputError
from rsaug.gan.checkpoint import CHECKPOINT_VERSION, convert_checkpoint, load_checkpoint, load_state_dict_file
from rsaug.gan.inference import file_sha256, load_generator
from rsaug.io.tileset import TileSet


class _Planted:
    """Unpickling this object runs ``touch MARKER`` (the attack of the issue: code in a checkpoint)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _evil(path: Path, marker: Path, base: dict | None = None) -> Path:
    state = dict(base or {"format": "rsaug-checkpoint", "version": CHECKPOINT_VERSION})
    state["payload"] = _Planted(marker)
    torch.save(state, path)
    return path


def _cli(*args: str) -> tuple[int, str]:
    """Run ``rsaug ARGS`` in a real process; (exit code, stderr)."""
    main = "from rsaug.cli.main import cli; cli(prog_name='rsaug')"
    p = subprocess.run([sys.executable, "-c", main, *args], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stderr


def test_fresh_checkpoints_hold_only_safe_types(tiny_checkpoint: Path) -> None:
    # nothing outside tensors and plain values: the file loads with PyTorch's default allow-list alone
    assert torch.serialization.get_unsafe_globals_in_checkpoint(tiny_checkpoint) == []
    state = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    assert state["version"] == CHECKPOINT_VERSION == 2
    name, key, pos, *_ = state["rng"]["numpy"]
    assert name == "MT19937" and len(key) == 624 and all(isinstance(k, int) for k in key[:5]) and 0 <= pos <= 624


@pytest.mark.parametrize("as_checkpoint", [True, False])
def test_malicious_checkpoint_runs_nothing_through_synthesize(
    tmp_path: Path, gid15_tileset: Path, tiny_checkpoint: Path, as_checkpoint: bool
) -> None:
    marker = tmp_path / "MARKER"
    base = None
    if as_checkpoint:  # a complete, valid-looking checkpoint with one planted object
        base = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    evil = _evil(tmp_path / "evil.ckpt", marker, base)
    out = tmp_path / "out"
    code, err = _cli("synthesize", "-c", str(evil), str(gid15_tileset), "-o", str(out), "-q")
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(evil) in lines[0] and "could run code" in lines[0] and "posix.system" in lines[0]
    assert "convert-checkpoint --trust" in lines[0]
    assert not marker.exists(), "the planted command ran"
    assert not out.exists()


def test_malicious_frozen_conductor_runs_nothing(tmp_path: Path, gid15_tileset: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = _evil(tmp_path / "conductor.ckpt", marker)
    with pytest.raises(InputError, match="could run code"):
        load_state_dict_file(evil, "C")
    run = tmp_path / "run"
    code, err = _cli("train", str(gid15_tileset), "-o", str(run), "--frozen-conductor", str(evil), "--steps", "1")
    assert code == 2 and "could run code" in err and "Traceback" not in err, err
    assert not marker.exists()
    assert not (run / "checkpoints").exists()


def _as_version_1(src: Path, dst: Path) -> None:
    """Write ``src`` as rsaug 0.x (checkpoint format 1) did: the NumPy RNG state as a uint32 array."""
    state = torch.load(src, map_location="cpu", weights_only=True)
    name, key, pos, has_gauss, cached = state["rng"]["numpy"]
    state["rng"]["numpy"] = (name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached)
    state["version"] = 1
    torch.save(state, dst)


def test_version_1_checkpoints_load_through_the_safe_path(tiny_checkpoint: Path, tmp_path: Path) -> None:
    old = tmp_path / "v1.ckpt"
    _as_version_1(tiny_checkpoint, old)
    assert set(torch.serialization.get_unsafe_globals_in_checkpoint(old)) >= {"numpy.ndarray"}
    ck, new = load_checkpoint(old), load_checkpoint(tiny_checkpoint)
    assert ck["version"] == 1 and isinstance(ck["rng"]["numpy"][1], np.ndarray)
    assert ck["rng"]["numpy"][1].tolist() == new["rng"]["numpy"][1]
    g_old, g_new = load_generator(old, device="cpu"), load_generator(tiny_checkpoint, device="cpu")
    mask = torch.zeros(1, 32, 32, dtype=torch.long)
    assert torch.equal(g_old.generate(mask, seed=3), g_new.generate(mask, seed=3))
    # an old checkpoint is also a valid --frozen-conductor source (same safe reader)
    c_old, c_new = load_state_dict_file(old, "C"), load_state_dict_file(tiny_checkpoint, "C")
    assert c_old.keys() == c_new.keys() and all(torch.equal(c_old[k], c_new[k]) for k in c_new)


def test_foreign_objects_need_the_explicit_trusted_conversion(tiny_checkpoint: Path, tmp_path: Path) -> None:
    # a checkpoint written by a modified rsaug: a Path object in it (harmless, but not a plain type)
    state = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    state["tileset_path"] = Path(state["tileset_path"])
    src = tmp_path / "foreign.ckpt"
    torch.save(state, src)
    with pytest.raises(InputError, match=r"could run code \(pathlib.*convert-checkpoint --trust"):
        load_checkpoint(src)
    dst = tmp_path / "converted.ckpt"
    res = CliRunner().invoke(cli, ["convert-checkpoint", str(src), str(dst)])
    assert res.exit_code == 2 and "--trust" in res.output and not dst.exists()
    res = CliRunner().invoke(cli, ["convert-checkpoint", "--trust", str(src), str(dst)])
    assert res.exit_code == 0, res.output
    conv = load_checkpoint(dst)
    assert conv["version"] == CHECKPOINT_VERSION and conv["tileset_path"] == str(state["tileset_path"])
    assert all(torch.equal(conv["G_ema"][k], state["G_ema"][k]) for k in state["G_ema"])
    res = CliRunner().invoke(cli, ["convert-checkpoint", "--trust", str(src), str(dst)])
    assert res.exit_code == 2 and "already exists" in res.output


def test_conversion_refuses_what_it_cannot_make_safe(tiny_checkpoint: Path, tmp_path: Path) -> None:
    state = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    state["extra"] = datetime.date(2026, 1, 1)  # not a plain type, and nothing to convert it to
    src, dst = tmp_path / "odd.ckpt", tmp_path / "odd2.ckpt"
    torch.save(state, src)
    with pytest.raises(InputError, match=r"outside the safe format \(datetime.date\)"):
        convert_checkpoint(src, dst, trust=True)
    assert not dst.exists()


def test_truncated_or_foreign_files_are_one_line_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_checkpoint(cut)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(InputError):
        load_checkpoint(plain)
    other = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(InputError, match="not an rsaug checkpoint"):
        load_checkpoint(other)


def test_expect_sha256_refuses_another_generator(tiny_checkpoint: Path, gid15_tileset: Path, tmp_path: Path) -> None:
    digest = file_sha256(tiny_checkpoint)
    assert load_generator(tiny_checkpoint, device="cpu", expect_sha256=digest.upper()).checkpoint_sha256 == digest
    with pytest.raises(InputError, match="not the expected"):
        load_generator(tiny_checkpoint, device="cpu", expect_sha256="0" * 64)
    with pytest.raises(InputError, match="64 hex digits"):
        load_generator(tiny_checkpoint, device="cpu", expect_sha256="abc")
    out = tmp_path / "syn"
    index = TileSet.open(gid15_tileset).index
    one = str(index.loc[index["split"] == "train", "tile_id"].iloc[0])
    args = ["synthesize", "-c", str(tiny_checkpoint), str(gid15_tileset), "-o", str(out), "-q", "--tile-id", one]
    res = CliRunner().invoke(cli, [*args, "--expect-sha256", "f" * 64])
    assert res.exit_code == 2 and "not the expected" in res.output and not out.exists(), res.output
    res = CliRunner().invoke(cli, [*args, "--expect-sha256", digest])
    assert res.exit_code == 0, res.output


def test_synthesize_refuses_an_output_another_process_writes(
    tiny_checkpoint: Path, gid15_tileset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second writer of a synthesis directory: exit 2, one line naming the directory and the holder's pid,
    refused before the generator is loaded (the lock comes first)."""
    import rsaug.cli.synthesize as synth_cli
    from tests.core.test_locks import HOLDER, LOCK_FILE, _python

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the generator was loaded although the output is locked")

    monkeypatch.setattr(synth_cli, "load_generator", no_loading)

    out = tmp_path / "syn"
    proc = subprocess.Popen(_python(HOLDER, "synthesis run", out), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        before = (out / LOCK_FILE).read_bytes()
        res = CliRunner().invoke(cli, ["synthesize", "-c", str(tiny_checkpoint), str(gid15_tileset), "-o", str(out)])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert lines[0].startswith(f"Error: {out}: another rsaug process (pid {proc.pid}: "), lines[0]
        assert [p.name for p in out.iterdir()] == [LOCK_FILE] and (out / LOCK_FILE).read_bytes() == before
    finally:
        proc.kill()
        proc.wait()
