"""Fixtures of the WebSocket tests.

`mask_impl` runs a test twice: with the codec masking through the optional C
function (treadle/websocket/_speedups.c) and through the Python reference,
so both give the same results. In CI (`CI` set) a missing C function is a
failure, not a skip: CI builds it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from treadle.websocket import codec as codec_module, frames as frames_module


@pytest.fixture(params=["c", "python"])
def mask_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """'c' or 'python': which masking the codec uses for this run."""
    if request.param == "c":
        if frames_module.c_mask is None:
            if os.environ.get("CI"):
                pytest.fail("treadle.websocket._speedups was not built")
            pytest.skip("treadle.websocket._speedups is not built (no C compiler at install)")
        impl = frames_module.c_mask
    else:
        impl = frames_module.python_mask
    monkeypatch.setattr(frames_module, "mask", impl)
    monkeypatch.setattr(codec_module, "mask", impl)
    yield request.param
