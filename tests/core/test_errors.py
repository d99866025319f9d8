"""Errors cross process boundaries intact (worker pools pickle them)."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from rsaug.core.errors import InputError, RsaugError, RunStopped, option
from rsaug.core.locks import OutputLocked


def _fail(kind: str) -> None:
    if kind == "input":
        raise InputError("scene.tif", f"bad value; see {option('max_pixels')}")
    raise RunStopped("RUN", "stopped by SIGTERM", exit_code=143)


@pytest.mark.parametrize(
    "err",
    [
        InputError("a.tif", "mask value 7 outside the scheme"),
        RunStopped(None, "stopped", exit_code=130),
        OutputLocked("OUT", "another rsaug process is writing it", {"pid": 12, "cmd": "rsaug tile"}),
    ],
)
def test_errors_pickle_with_message_and_exit_code(err: RsaugError) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and back.message == err.message and back.exit_code == err.exit_code
    assert back.path == err.path and back.args == err.args


def test_an_error_raised_in_a_worker_process_reaches_the_caller_as_is() -> None:
    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(InputError) as exc:
            pool.submit(_fail, "input").result()
        assert exc.value.path == "scene.tif" and exc.value.render(lambda n: "--" + n.replace("_", "-")).endswith(
            "see --max-pixels"
        )
        with pytest.raises(RunStopped) as stop:
            pool.submit(_fail, "stop").result()
        assert stop.value.exit_code == 143


def _fail_from_gdal() -> None:
    from rasterio._err import CPLE_AppDefinedError

    try:
        raise CPLE_AppDefinedError(1, 4, "TIFFReadEncodedStrip() failed")
    except CPLE_AppDefinedError as exc:
        raise InputError("scene.tif", "cannot read block 2") from exc


def test_portable_call_drops_an_unpicklable_cause() -> None:
    """With tblib's exception pickling installed (Dask does it on import), an error caused by a rasterio CPLE
    error cannot be unpickled; ``portable_call`` sends the one-line error alone."""
    import tblib.pickling_support

    from rsaug.core.errors import portable_call

    tblib.pickling_support.install()
    with pytest.raises(InputError) as info:
        _fail_from_gdal()
    with pytest.raises(AttributeError):  # the failure portable_call guards against
        pickle.loads(pickle.dumps(info.value))
    with pytest.raises(InputError) as info:
        portable_call(_fail_from_gdal)
    assert info.value.__cause__ is None and info.value.__context__ is None
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is InputError and back.message == "scene.tif: cannot read block 2" and back.exit_code == 2
    assert portable_call(max, 2, 5) == 5
