# SPDX-License-Identifier: Apache-2.0
# Independent-signer check: boto3 (botocore's SigV4 and serializers) against the emulator binary.
"""Run with METERING_EMULATOR_BIN pointing at the built binary:

    METERING_EMULATOR_BIN=target/$(rustc -vV | sed -n "s/host: //p")/debug/metering-emulator pytest emulator/tests/python
"""

import datetime
import json
import os
import signal
import subprocess
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ACCESS_KEY_ID = "EMULATORKEYID0000001"
SECRET_ACCESS_KEY = "emulator-secret-access-key"
SESSION_ACCESS_KEY_ID = "EMULATORSESSIONKEY01"
SESSION_SECRET_ACCESS_KEY = "emulator-session-secret"
SESSION_TOKEN = "emulator-session-token"
PRODUCT_CODE = "prod-1234"
LICENSE_ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def endpoint():
    binary = os.environ.get("METERING_EMULATOR_BIN")
    if not binary:
        pytest.skip("METERING_EMULATOR_BIN is not set")
    proc = subprocess.Popen([binary, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("METERING_EMULATOR_PORT="), line
        port = int(line.split("=", 1)[1])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def make_client(endpoint, secret=SECRET_ACCESS_KEY, key=ACCESS_KEY_ID, token=None, validate=True):
    return boto3.client(
        "meteringmarketplace",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=validate),
    )


def ledger(endpoint):
    with urllib.request.urlopen(f"{endpoint}/_emulator/ledger") as r:
        return json.load(r)


def test_all_four_operations(endpoint):
    client = make_client(endpoint)
    now = datetime.datetime.now(datetime.timezone.utc)

    out = client.batch_meter_usage(
        ProductCode=PRODUCT_CODE,
        UsageRecords=[
            {"Timestamp": now, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 3},
            {
                "Timestamp": now,
                "CustomerIdentifier": "cust-2",
                "Dimension": "gb",
                "Quantity": 2,
                "UsageAllocations": [
                    {"AllocatedUsageQuantity": 2, "Tags": [{"Key": "team", "Value": "blue"}]}
                ],
            },
            {"Timestamp": now, "CustomerIdentifier": "cust-unsubscribed", "Dimension": "users", "Quantity": 1},
        ],
    )
    statuses = [r["Status"] for r in out["Results"]]
    assert statuses == ["Success", "Success", "CustomerNotSubscribed"]
    assert out["UnprocessedRecords"] == []
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert len(out["ResponseMetadata"]["RequestId"]) == 36
    assert out["Results"][0]["UsageRecord"]["Timestamp"].timestamp() == pytest.approx(now.timestamp(), abs=1)

    # License-based record without ProductCode.
    out = client.batch_meter_usage(
        UsageRecords=[
            {
                "Timestamp": now,
                "CustomerAWSAccountId": "111122223333",
                "LicenseArn": LICENSE_ARN,
                "Dimension": "requests",
                "Quantity": 7,
            }
        ]
    )
    assert out["Results"][0]["Status"] == "Success"

    # MeterUsage: boto3 fills ClientToken itself; a repeat in the hour returns the same id.
    a = client.meter_usage(ProductCode=PRODUCT_CODE, Timestamp=now, UsageDimension="users", UsageQuantity=4)
    b = client.meter_usage(ProductCode=PRODUCT_CODE, Timestamp=now, UsageDimension="users", UsageQuantity=4)
    assert a["MeteringRecordId"] == b["MeteringRecordId"]

    with pytest.raises(client.exceptions.DuplicateRequestException):
        client.meter_usage(ProductCode=PRODUCT_CODE, Timestamp=now, UsageDimension="users", UsageQuantity=5)

    resolved = client.resolve_customer(RegistrationToken="reg-token-valid")
    assert resolved["CustomerIdentifier"] == "cust-1"
    assert resolved["ProductCode"] == PRODUCT_CODE
    assert resolved["CustomerAWSAccountId"] == "111122223333"
    assert resolved["LicenseArn"] == LICENSE_ARN

    registered = client.register_usage(ProductCode=PRODUCT_CODE, PublicKeyVersion=1, Nonce="n-1")
    assert registered["Signature"].count(".") == 2
    assert isinstance(registered["PublicKeyRotationTimestamp"], datetime.datetime)

    billed = ledger(endpoint)
    assert len(billed) == 4
    assert {e["operation"] for e in billed} == {"BatchMeterUsage", "MeterUsage"}


def test_session_credentials(endpoint):
    client = make_client(endpoint, key=SESSION_ACCESS_KEY_ID, secret=SESSION_SECRET_ACCESS_KEY, token=SESSION_TOKEN)
    assert client.resolve_customer(RegistrationToken="reg-token-valid")["CustomerIdentifier"] == "cust-1"
    no_token = make_client(endpoint, key=SESSION_ACCESS_KEY_ID, secret=SESSION_SECRET_ACCESS_KEY)
    with pytest.raises(ClientError) as e:
        no_token.resolve_customer(RegistrationToken="reg-token-valid")
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_wrong_secret_is_invalid_signature(endpoint):
    client = make_client(endpoint, secret="not-the-secret")
    with pytest.raises(ClientError) as e:
        client.resolve_customer(RegistrationToken="reg-token-valid")
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_modeled_errors_map_to_exception_classes(endpoint):
    client = make_client(endpoint)
    with pytest.raises(client.exceptions.InvalidTokenException) as e:
        client.resolve_customer(RegistrationToken="no-such-token")
    assert e.value.response["Error"]["Code"] == "InvalidTokenException"
    assert e.value.response["ResponseMetadata"]["RequestId"]
    with pytest.raises(client.exceptions.ExpiredTokenException):
        client.resolve_customer(RegistrationToken="reg-token-expired")
    # botocore would refuse PublicKeyVersion=0 itself; let the service answer.
    unvalidated = make_client(endpoint, validate=False)
    with pytest.raises(client.exceptions.InvalidPublicKeyVersionException):
        unvalidated.register_usage(ProductCode=PRODUCT_CODE, PublicKeyVersion=0)
    with pytest.raises(client.exceptions.TimestampOutOfBoundsException):
        client.batch_meter_usage(
            ProductCode=PRODUCT_CODE,
            UsageRecords=[
                {
                    "Timestamp": time.time() - 7 * 3600,
                    "CustomerIdentifier": "cust-3",
                    "Dimension": "users",
                    "Quantity": 1,
                }
            ],
        )
    with pytest.raises(ClientError) as e:
        client.meter_usage(ProductCode=PRODUCT_CODE, Timestamp=time.time(), UsageDimension="gb", DryRun=True)
    assert e.value.response["Error"]["Code"] == "DryRunOperation"
