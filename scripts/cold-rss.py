# SPDX-License-Identifier: Apache-2.0
"""How much of the Python module a cold process maps: fails when the link order has gone stale.

    METERING_EMULATOR_BIN=target/<host>/debug/metering-emulator \
        .venv/bin/python scripts/cold-rss.py [LIMIT_KIB]

Drops the installed module from the page cache (as after a reboot, so the kernel reads it
back the way a new container does), starts the emulator, then runs `scripts/cold_call.py` in
a fresh interpreter (import, Client(), one BatchMeterUsage of 25 records, one MeterUsage: the
same cold start `scripts/link-order.sh` records) and prints the module's code resident in
that process and its peak RSS. bindings-python/build.rs links the code a cold start runs
together (bindings-python/link-order.txt); unordered, the same process maps about 4 MB of the
module's code, and with a current order about 0.9 MB (924-992 KiB on Intel and AMD hosts). Over
LIMIT_KIB (default 1280) means the order no longer matches the code: a change that renames
the functions a cold call runs (a new generic instance, as parsing a str instead of a byte
slice) took 924 KiB to 1564 before the order was recorded again. Then run
scripts/link-order.sh. Only on x86_64 Linux with glibc, where build.rs orders the link.

The page-cache drop cannot evict pages another process has mapped; run it with no other
process using the installed module.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    binary = os.environ.get("METERING_EMULATOR_BIN")
    if not binary:
        sys.exit("cold-rss: set METERING_EMULATOR_BIN to the built metering-emulator")
    emulator = subprocess.Popen([binary, "--port", "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    assert emulator.stdout
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = emulator.stdout.readline()
        if line.startswith("METERING_EMULATOR_PORT="):
            return emulator, f"http://127.0.0.1:{line.split('=', 1)[1].strip()}"
        if not line and emulator.poll() is not None:
            break
    emulator.kill()
    sys.exit("cold-rss: the emulator did not start")


def main() -> int:
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 1280
    if (sys.platform != "linux" or platform.machine() != "x86_64"
            or platform.libc_ver()[0] != "glibc"):
        print("cold-rss: the link is ordered on x86_64 Linux with glibc only; nothing to check")
        return 0
    spec = importlib.util.find_spec("marketplace_metering")  # finds it without importing it
    assert spec and spec.submodule_search_locations
    (module,) = Path(spec.submodule_search_locations[0]).glob("_native*.so")
    fd = os.open(module, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)

    emulator, endpoint = start_emulator()
    try:
        env = {**os.environ, "MM_ENDPOINT": endpoint}
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            env.pop(key, None)
        out = subprocess.run([sys.executable, str(HERE / "cold_call.py")], env=env,
                             check=True, capture_output=True, text=True).stdout
    finally:
        emulator.terminate()
        emulator.wait()
    code, hwm = (int(v) for v in out.split())
    print(f"cold-rss: {module.name} code resident after a cold call {code} KiB "
          f"(limit {limit}), peak RSS {hwm / 1024:.1f} MiB")
    if code > limit:
        recorded, used = recorded_rustc(), module_rustc(module)
        if recorded != used:
            # The order names symbols by their mangled names, whose hashes include the
            # compiler's version: another rustc's build matches none of them.
            print(f"cold-rss: warning: the link order was recorded with {recorded!r} and this "
                  f"build used {used!r}; its symbols cannot match, so this is not a failure. "
                  "Run scripts/link-order.sh with this compiler to order the link.",
                  file=sys.stderr)
            return 0
        print("cold-rss: the module's link order no longer matches its code: "
              "run scripts/link-order.sh and commit bindings-python/link-order.txt "
              "and bindings-python/link-order.rustc",
              file=sys.stderr)
        return 1
    return 0


def recorded_rustc() -> str:
    path = HERE.parent / "bindings-python" / "link-order.rustc"
    return path.read_text().strip() if path.exists() else "(not recorded)"


def module_rustc(module: Path) -> str:
    """The compiler that built the module, from the `rustc version ...` line rustc leaves in
    its `.comment` section, as `rustc -V` prints it."""
    data = module.read_bytes()
    at = data.find(b"rustc version ")
    if at < 0:
        return "(not in the module)"
    end = data.find(b"\0", at)
    return "rustc " + data[at + len(b"rustc version "):end].decode(errors="replace")


if __name__ == "__main__":
    sys.exit(main())
