# SPDX-License-Identifier: Apache-2.0
"""Checks what `maturin build` and `maturin sdist` made, before anything installs them.

    python check_dists.py WHEEL SDIST

The wheel: one tag, cp310-abi3-<platform> (the stable ABI: one wheel for every CPython from
3.10), a manylinux platform on Linux (macosx on macOS), in its name and in its WHEEL file, with
the licence, the typing marker and the stubs. The sdist: everything a build from source
needs (the workspace manifest and lock file, the crates the bindings depend on) and the licence.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

PLATFORMS = {"linux": ("manylinux_",), "darwin": ("macosx_",)}


def check_wheel(path: Path) -> None:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        (wheel_file,) = [n for n in names if n.endswith(".dist-info/WHEEL")]
        meta = Parser().parsestr(z.read(wheel_file).decode())
    tags = meta.get_all("Tag") or []
    name_tag = "-".join(path.stem.split("-")[2:])
    assert tags == [name_tag], f"WHEEL tags {tags} != file name tag {name_tag}"
    py, abi, plat = name_tag.split("-")
    assert (py, abi) == ("cp310", "abi3"), f"{name_tag}: not the stable ABI for CPython >= 3.10"
    wanted = PLATFORMS.get(sys.platform)
    if wanted:
        assert plat.startswith(wanted), f"{name_tag}: platform is not {wanted[0]}*"
    assert meta.get("Root-Is-Purelib") == "false", "a wheel with a native module is not purelib"
    for needed in ("LICENSE", "marketplace_metering/py.typed", "marketplace_metering/_native.pyi"):
        assert any(n.endswith(needed) for n in names), f"{path.name} lacks {needed}"
    print(f"wheel ok: {path.name}")


def check_sdist(path: Path) -> None:
    with tarfile.open(path) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    needed = ["pyproject.toml", "Cargo.toml", "Cargo.lock", "LICENSE", "core/Cargo.toml",
              "emulator/Cargo.toml", "bindings-python/Cargo.toml", "bindings-python/build.rs",
              "bindings-python/link-order.txt"]
    missing = [n for n in needed if n not in names]
    assert not missing, f"{path.name} lacks {missing}"
    print(f"sdist ok: {path.name} ({len(names)} files)")


if __name__ == "__main__":
    check_wheel(Path(sys.argv[1]))
    check_sdist(Path(sys.argv[2]))
