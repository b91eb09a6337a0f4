# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator


@pytest.fixture(scope="session")
def emu_session() -> Iterator[Emulator]:
    emu = Emulator()
    yield emu
    emu.shutdown()


@pytest.fixture
def emu(emu_session: Emulator) -> Emulator:
    emu_session.reset()
    return emu_session


@pytest.fixture
def client(emu: Emulator) -> mm.Client:
    return emu.client()


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def records(n: int, *, start: int = 1, quantity: int = 3, dimension: str = "users") -> List[Dict[str, Any]]:
    ts = now()
    return [
        {"Timestamp": ts, "CustomerIdentifier": f"cust-{start + i}", "Dimension": dimension, "Quantity": quantity}
        for i in range(n)
    ]
