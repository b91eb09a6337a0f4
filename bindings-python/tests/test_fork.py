# SPDX-License-Identifier: Apache-2.0
"""Clients work after os.fork(): one made before the fork, one made in the child; the parent too."""

from __future__ import annotations

import os

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator

from conftest import records, run_in_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_client_from_parent_and_new_client_in_child(client: mm.Client, emu: Emulator) -> None:
    # The parent has used the runtime and a pooled connection before forking.
    client.batch_meter_usage(ProductCode="prod-1234", UsageRecords=records(1, start=1))

    def child() -> None:
        r = client.batch_meter_usage(ProductCode="prod-1234", UsageRecords=records(1, start=2))
        assert r["Results"][0]["Status"] == "Success"
        fresh = emu.client()
        r = fresh.batch_meter_usage(ProductCode="prod-1234", UsageRecords=records(1, start=3))
        assert r["Results"][0]["Status"] == "Success"

    assert run_in_child(child) == 0
    # The parent keeps working, many times over.
    for i in range(20):
        r = client.resolve_customer(RegistrationToken="reg-token-valid")
        assert r["CustomerIdentifier"] == "cust-1"
    assert sorted(e["customer_identifier"] for e in emu.ledger()) == ["cust-1", "cust-2", "cust-3"]


def test_async_client_in_child(emu: Emulator) -> None:
    import asyncio

    ac = emu.async_client()
    asyncio.run(ac.resolve_customer(RegistrationToken="reg-token-valid"))

    def child() -> None:
        r = asyncio.run(ac.resolve_customer(RegistrationToken="reg-token-valid"))
        assert r["CustomerIdentifier"] == "cust-1"

    assert run_in_child(child) == 0
    assert asyncio.run(ac.resolve_customer(RegistrationToken="reg-token-valid"))["CustomerIdentifier"] == "cust-1"


def test_a_child_that_exits_normally_drops_the_parents_emulator_quietly() -> None:
    """A test's forked worker (``multiprocessing`` with fork) that ends as a process does:
    interpreter finalization drops the parent's ``Emulator``. Its server thread is not in the
    child; joining it panicked (``threads should not terminate unexpectedly``) in every child,
    and the parent's emulator must keep serving."""
    import subprocess
    import sys

    script = """
import os, sys
import marketplace_metering as mm
from marketplace_metering.testing import Emulator
emu = Emulator()
c = emu.client()
c.resolve_customer(RegistrationToken="reg-token-valid")
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        sys.exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
print(c.resolve_customer(RegistrationToken="reg-token-valid")["CustomerIdentifier"])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cust-1"
    assert "panicked" not in out.stderr and "Exception" not in out.stderr, out.stderr
