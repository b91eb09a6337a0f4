# SPDX-License-Identifier: Apache-2.0
"""Each call's outcome is logged at DEBUG on the `marketplace_metering` logger, without secrets."""

from __future__ import annotations

import logging

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator


def test_success_and_failure_logged(client: mm.Client, emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="marketplace_metering"):
        resp = client.resolve_customer(RegistrationToken="reg-token-valid")
        emu.push_fault({"kind": "throttle"})
        client.resolve_customer(RegistrationToken="reg-token-valid")
        with pytest.raises(mm.exceptions.InvalidTokenException):
            client.resolve_customer(RegistrationToken="nope")
    recs = [r for r in caplog.records if r.name == "marketplace_metering"]
    assert len(recs) == 3
    assert all(r.levelno == logging.DEBUG for r in recs)
    msgs = [r.getMessage() for r in recs]
    assert msgs[0].startswith("ResolveCustomer succeeded: status=200 attempts=1 request_id=")
    assert resp["ResponseMetadata"]["RequestId"] in msgs[0]
    assert "attempts=2" in msgs[1]
    assert msgs[2].startswith("ResolveCustomer failed: code=InvalidTokenException status=400 attempts=1")
    text = "\n".join(msgs)
    assert emu.aws_secret_access_key not in text and emu.aws_access_key_id not in text


async def test_async_logged(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="marketplace_metering"):
        await emu.async_client().resolve_customer(RegistrationToken="reg-token-valid")
    assert any(r.getMessage().startswith("ResolveCustomer succeeded") for r in caplog.records)


def test_nothing_logged_above_debug(client: mm.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="marketplace_metering"):
        client.resolve_customer(RegistrationToken="reg-token-valid")
    assert [r for r in caplog.records if r.name == "marketplace_metering"] == []
