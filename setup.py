"""Build configuration beyond pyproject.toml: the optional C fast path of the
request parser. `optional=True` means a machine without a C compiler still
installs Treadle, pure Python (the parser then runs its own code for every
request; TREADLE_NO_EXTENSIONS=1 in the environment forces that at start-up,
see treadle/http/__init__.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "treadle.http._speedups",
            ["treadle/http/_speedups.c"],
            optional=True,
        )
    ]
)
