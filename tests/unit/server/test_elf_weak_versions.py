"""The GLIBCXX need patcher flips exactly the WEAK flag of missing versions and nothing else."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from babelcap.server.stack.elf_weak_versions import provided_versions, weaken_missing

LIBSTDCXX = Path("/lib/x86_64-linux-gnu/libstdc++.so.6")
needs_toolchain = pytest.mark.skipif(
    shutil.which("g++") is None or shutil.which("readelf") is None or not LIBSTDCXX.exists(),
    reason="needs g++, readelf and Debian's libstdc++",
)


@pytest.fixture()
def cxx_library(tmp_path: Path) -> Path:
    source = tmp_path / "lib.cpp"
    source.write_text(
        "#include <string>\n"
        'extern "C" int length(const char* s) { return std::string(s).size(); }\n',
        encoding="utf-8",
    )
    library = tmp_path / "libtest.so"
    subprocess.run(["g++", "-shared", "-fPIC", "-O1", str(source), "-o", str(library)], check=True)
    return library


def _weak_needs(library: Path) -> list[str]:
    listing = subprocess.run(
        ["readelf", "-V", str(library)], check=True, capture_output=True, text=True
    ).stdout
    return [
        line.split("Name: ")[1].split()[0] for line in listing.splitlines() if "Flags: WEAK" in line
    ]


@needs_toolchain
def test_versions_the_system_provides_are_left_alone(cxx_library):
    before = cxx_library.read_bytes()
    assert weaken_missing(cxx_library, provided_versions(LIBSTDCXX)) == []
    assert cxx_library.read_bytes() == before


@needs_toolchain
def test_missing_versions_become_weak_and_the_library_still_loads(cxx_library):
    before = cxx_library.read_bytes()
    patched = weaken_missing(cxx_library, provided={"GLIBCXX_3.4"})  # pretend the rest is missing
    assert patched and all(name.startswith("GLIBCXX_3.4.") for name in patched)
    assert sorted(_weak_needs(cxx_library)) == sorted(patched)
    after = cxx_library.read_bytes()
    assert len(after) == len(before)
    # Only the 2-byte flag fields changed.
    assert sum(a != b for a, b in zip(before, after, strict=True)) == len(patched)
    assert ctypes.CDLL(str(cxx_library)).length(b"babel") == 5
    assert weaken_missing(cxx_library, provided={"GLIBCXX_3.4"}) == []  # idempotent


def test_a_non_elf_file_is_refused(tmp_path):
    bogus = tmp_path / "not.so"
    bogus.write_bytes(b"#!/bin/sh\n")
    with pytest.raises(ValueError, match="not a little-endian ELF64"):
        weaken_missing(bogus, set())
