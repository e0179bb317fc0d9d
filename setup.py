"""Build configuration beyond pyproject.toml: the optional C fast paths of the
request parser and of WebSocket masking. `optional=True` means a machine
without a C compiler still installs Treadle, pure Python (the parser then runs
its own code for every request, and masking is done in Python;
TREADLE_NO_EXTENSIONS=1 in the environment forces that at start-up, see
treadle/http/__init__.py and treadle/websocket/frames.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "treadle.http._speedups",
            ["treadle/http/_speedups.c"],
            optional=True,
        ),
        Extension(
            "treadle.websocket._speedups",
            ["treadle/websocket/_speedups.c"],
            optional=True,
        ),
    ]
)
