"""Build the Cython hot paths in ext/ into the responder package.

Every compiled module has a pure-Python twin. A machine without a C compiler
still installs revocd: the failed build is reported and revocd logs at start-up
that it runs on the twins. REVOCD_REQUIRE_EXT=1 (set by `make`) turns a failed
build into an error; REVOCD_NO_EXT=1 skips the build.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

EXT_MODULES = {
    "responder.ocsp._request_fast": "ext/ocsp_request.pyx",
    "responder.ocsp._response_fast": "ext/ocsp_response.pyx",
    "crlgen._entries_fast": "ext/crl_entries.pyx",
    "responder.http._reactor_fast": "ext/http_reactor.pyx",
}


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._fail(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fail(exc, ext.name)

    def _fail(self, exc: Exception, name: str = "extensions") -> None:
        if os.environ.get("REVOCD_REQUIRE_EXT") == "1":
            raise exc
        print(
            f"revocd: building {name} failed ({exc}); the pure-Python twin will be used",
            file=sys.stderr,
        )


def extensions() -> list[Extension]:
    if os.environ.get("REVOCD_NO_EXT") == "1":
        return []
    from Cython.Build import cythonize

    modules = [
        Extension(name, [source], extra_compile_args=["-O2"])
        for name, source in EXT_MODULES.items()
    ]
    return cythonize(
        modules,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
