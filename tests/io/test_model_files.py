""":func:`rsaug.io.model_files.read_model_file`: tensors and plain values come back (memory-mapped); every other
file is a one-line :class:`InputError` that says why: missing, not torch.save's zip archive, objects that could
run code (named, in order, with the caller's hint), or damaged data."""

from __future__ import annotations

import datetime
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rsaug.core.errors import InputError
from rsaug.io.model_files import read_model_file


def test_tensors_plain_values_and_numpy_arrays_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ok.pt"
    state = {
        "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "n": 3,
        "s": "x",
        "rng": np.arange(4, dtype=np.uint32),
    }
    torch.save(state, path)
    got = read_model_file(path, "model file")
    assert torch.equal(got["w"], state["w"]) and got["n"] == 3 and got["s"] == "x"
    assert np.array_equal(got["rng"], state["rng"]) and got["rng"].dtype == np.uint32


def test_missing_foreign_and_legacy_files_say_what_they_are(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        read_model_file(tmp_path / "missing.pt", "segmenter file")
    assert exc.value.path == str(tmp_path / "missing.pt") and exc.value.problem == "segmenter file not found"
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    for path in (garbage, legacy):
        with pytest.raises(InputError, match=r"cannot read checkpoint: not the zip archive torch\.save writes") as exc:
            read_model_file(path, "checkpoint")
        assert "\n" not in str(exc.value) and "mmap" not in str(exc.value)


def test_objects_that_could_run_code_are_named_with_the_hint(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.pt"
    torch.save({"when": datetime.date(2020, 1, 1), "delta": datetime.timedelta(1), "w": torch.zeros(1)}, hostile)
    with pytest.raises(InputError) as exc:
        read_model_file(hostile, "checkpoint", trust_hint="convert it if you trust it")
    msg = str(exc.value)
    assert "refusing to load: the file holds Python objects that could run code" in msg
    assert "(datetime.date, datetime.timedelta); convert it if you trust it" in msg  # sorted, numpy not listed
    assert "\n" not in msg


def test_a_damaged_pickle_is_not_called_hostile(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(2)}, good)
    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(damaged, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl"):  # an opcode the restricted unpickler does not take, no globals
                buf = io.BytesIO()
                buf.write(pickle.PROTO + bytes([2]) + pickle.EMPTY_LIST + pickle.EXT1 + bytes([1]) + pickle.STOP)
                data = buf.getvalue()
            dst.writestr(info, data)
    with pytest.raises(InputError, match="cannot read checkpoint: damaged data") as exc:
        read_model_file(damaged, "checkpoint", trust_hint="never shown here")
    assert "could run code" not in str(exc.value) and "never shown" not in str(exc.value)
    assert "\n" not in str(exc.value)
