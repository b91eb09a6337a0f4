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
    recs = [r for r in caplog.records if r.name == "marketplace_metering" and not hasattr(r, "attempt")]
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


def test_every_attempt_is_a_record_with_fields(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    # The emulator's session credentials (metering_emulator::SESSION_*).
    c = emu.client(
        aws_access_key_id="EMULATORSESSIONKEY01",
        aws_secret_access_key="emulator-session-secret",
        aws_session_token="emulator-session-token",
    )
    emu.push_fault({"kind": "throttle"})
    with caplog.at_level(logging.DEBUG, logger="marketplace_metering"):
        resp = c.resolve_customer(RegistrationToken="reg-token-valid")
        for _ in range(3):
            emu.push_fault({"kind": "throttle"})
        with pytest.raises(mm.exceptions.ThrottlingException):
            c.resolve_customer(RegistrationToken="reg-token-valid")
    assert "_AttemptLog" not in resp["ResponseMetadata"]
    attempts = [r for r in caplog.records if hasattr(r, "attempt")]
    assert [(r.attempt, r.status, r.outcome, r.retry_reason) for r in attempts] == [
        (1, 400, "ThrottlingException", "throttling"),
        (2, 200, "ok", None),
        (1, 400, "ThrottlingException", "throttling"),
        (2, 400, "ThrottlingException", "throttling"),
        (3, 400, "ThrottlingException", None),
    ]
    assert all(r.operation == "ResolveCustomer" and r.latency_ms >= 0 for r in attempts)
    assert attempts[1].request_id == resp["ResponseMetadata"]["RequestId"]
    text = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for secret in ("emulator-session-secret", "emulator-session-token", "Signature", "uthorization"):
        assert secret not in text
