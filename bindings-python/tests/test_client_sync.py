# SPDX-License-Identifier: Apache-2.0
"""The blocking client against the in-process emulator (mirrored by test_client_async.py)."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator

from conftest import HUNG_SERVER_CHILD, interrupt_child, now, records

PRODUCT = "prod-1234"


def assert_metadata(resp: dict, retries: int = 0) -> None:
    meta = resp["ResponseMetadata"]
    assert set(meta) == {"RequestId", "HTTPStatusCode", "HTTPHeaders", "RetryAttempts"}
    assert isinstance(meta["RequestId"], str) and meta["RequestId"]
    assert meta["HTTPStatusCode"] == 200
    assert isinstance(meta["HTTPHeaders"], dict)
    assert meta["HTTPHeaders"]["x-amzn-requestid"] == meta["RequestId"]
    assert meta["RetryAttempts"] == retries


def test_batch_meter_usage_success(client: mm.Client, emu: Emulator) -> None:
    recs = records(3)
    resp = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=recs)
    assert set(resp) == {"Results", "UnprocessedRecords", "ResponseMetadata"}
    assert resp["UnprocessedRecords"] == []
    assert [r["Status"] for r in resp["Results"]] == ["Success"] * 3
    for sent, r in zip(recs, resp["Results"]):
        assert isinstance(r["MeteringRecordId"], str) and r["MeteringRecordId"]
        rec = r["UsageRecord"]
        assert rec["CustomerIdentifier"] == sent["CustomerIdentifier"]
        assert rec["Dimension"] == "users" and rec["Quantity"] == 3
        assert rec["Timestamp"] == sent["Timestamp"]
        assert rec["Timestamp"].tzinfo is not None
    assert_metadata(resp)
    assert [(e["customer_identifier"], e["quantity"]) for e in emu.ledger()] == [
        ("cust-1", 3), ("cust-2", 3), ("cust-3", 3)]


def test_batch_meter_usage_25_records_and_allocations(client: mm.Client, emu: Emulator) -> None:
    recs = records(25)
    recs[0]["UsageAllocations"] = [
        {"AllocatedUsageQuantity": 2, "Tags": [{"Key": "team", "Value": "a"}]},
        {"AllocatedUsageQuantity": 1},
    ]
    resp = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=recs)
    assert len(resp["Results"]) == 25
    assert all(r["Status"] == "Success" for r in resp["Results"])
    assert resp["Results"][0]["UsageRecord"]["UsageAllocations"] == recs[0]["UsageAllocations"]
    assert len(emu.ledger()) == 25


def test_batch_per_record_statuses(client: mm.Client, emu: Emulator) -> None:
    ts = now()
    first = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": ts, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 5}])
    resp = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": ts, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 5},
        {"Timestamp": ts, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 6},
        {"Timestamp": ts, "CustomerIdentifier": "cust-unsubscribed", "Dimension": "users", "Quantity": 1},
    ])
    statuses = [r["Status"] for r in resp["Results"]]
    assert statuses == ["Success", "DuplicateRecord", "CustomerNotSubscribed"]
    assert resp["Results"][0]["MeteringRecordId"] == first["Results"][0]["MeteringRecordId"]
    assert len(emu.ledger()) == 1  # billed once


def test_batch_license_records(client: mm.Client, emu: Emulator) -> None:
    resp = client.batch_meter_usage(UsageRecords=[{
        "Timestamp": now(), "CustomerAWSAccountId": emu.customer_aws_account_id,
        "LicenseArn": emu.license_arn, "Dimension": "gb", "Quantity": 7}])
    r = resp["Results"][0]
    assert r["Status"] == "Success"
    assert r["UsageRecord"]["LicenseArn"] == emu.license_arn
    assert "CustomerIdentifier" not in r["UsageRecord"]


@pytest.mark.parametrize("ts", [
    lambda t: int(t.timestamp()),
    lambda t: t.timestamp() + 0.25,
    lambda t: t.isoformat(),
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"),
    lambda t: t.replace(tzinfo=None),                         # naive = UTC
    lambda t: t.astimezone(timezone(timedelta(hours=5))),     # other offset
])
def test_timestamp_forms(client: mm.Client, ts) -> None:
    t = now()
    resp = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": ts(t), "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 1}])
    out = resp["Results"][0]["UsageRecord"]["Timestamp"]
    assert isinstance(out, datetime) and out.utcoffset() == timedelta(0)
    assert abs((out - t).total_seconds()) < 1


def test_meter_usage(client: mm.Client, emu: Emulator) -> None:
    ts = now()
    resp = client.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=4)
    assert set(resp) == {"MeteringRecordId", "ResponseMetadata"}
    assert_metadata(resp)
    again = client.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=4)
    assert again["MeteringRecordId"] == resp["MeteringRecordId"]
    with pytest.raises(client.exceptions.DuplicateRequestException) as ei:
        client.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=9)
    e = ei.value
    assert e.response["Error"]["Code"] == "DuplicateRequestException"
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.operation_name == "MeterUsage"
    assert e.code == "DuplicateRequestException" and e.status_code == 400 and e.request_id
    assert e.retryable is False
    assert len(emu.ledger()) == 1


def test_meter_usage_dry_run_and_client_token(client: mm.Client, emu: Emulator) -> None:
    with pytest.raises(mm.exceptions.DryRunOperation) as ei:
        client.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="gb", DryRun=True)
    assert isinstance(ei.value, mm.ClientError)
    assert emu.ledger() == []
    token = str(uuid.uuid4())
    client.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="gb", UsageQuantity=1, ClientToken=token)
    with pytest.raises(mm.exceptions.IdempotencyConflictException):
        client.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="gb", UsageQuantity=2, ClientToken=token)


def test_meter_usage_service_errors(client: mm.Client) -> None:
    with pytest.raises(mm.exceptions.InvalidProductCodeException):
        client.meter_usage(ProductCode="nope", Timestamp=now(), UsageDimension="users")
    with pytest.raises(mm.exceptions.InvalidUsageDimensionException):
        client.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="cpu")
    with pytest.raises(mm.exceptions.TimestampOutOfBoundsException):
        client.meter_usage(ProductCode=PRODUCT, Timestamp=now() - timedelta(hours=7), UsageDimension="users")


def test_resolve_customer(client: mm.Client, emu: Emulator) -> None:
    resp = client.resolve_customer(RegistrationToken="reg-token-valid")
    assert resp["CustomerIdentifier"] == "cust-1"
    assert resp["ProductCode"] == PRODUCT
    assert resp["CustomerAWSAccountId"] == emu.customer_aws_account_id
    assert resp["LicenseArn"] == emu.license_arn
    assert_metadata(resp)
    # A product metered by license: the answer names the account and the license only.
    by_license = client.resolve_customer(RegistrationToken="reg-token-license")
    assert "CustomerIdentifier" not in by_license and "ProductCode" not in by_license
    assert by_license["LicenseArn"] == emu.license_arn
    with pytest.raises(mm.exceptions.InvalidTokenException) as ei:
        client.resolve_customer(RegistrationToken="no-such-token")
    assert ei.value.operation_name == "ResolveCustomer"
    with pytest.raises(client.exceptions.ExpiredTokenException):
        client.resolve_customer(RegistrationToken="reg-token-expired")


def test_register_usage(client: mm.Client) -> None:
    resp = client.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1, Nonce="n-1")
    assert isinstance(resp["Signature"], str) and resp["Signature"]
    ts = resp["PublicKeyRotationTimestamp"]
    assert isinstance(ts, datetime) and ts.tzinfo is not None
    assert_metadata(resp)
    with pytest.raises(mm.exceptions.InvalidProductCodeException):
        client.register_usage(ProductCode="nope", PublicKeyVersion=1)


def test_throttle_is_retried(client: mm.Client, emu: Emulator) -> None:
    emu.push_fault({"kind": "throttle"})
    emu.push_fault({"kind": "internal_error"})
    resp = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(2))
    assert resp["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(emu.ledger()) == 2


@pytest.mark.parametrize("kind", ["unavailable", "reset", "garbage"])
def test_transient_faults_are_retried(client: mm.Client, emu: Emulator, kind: str) -> None:
    emu.push_fault({"kind": kind})
    resp = client.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="users", UsageQuantity=1)
    assert resp["ResponseMetadata"]["RetryAttempts"] == 1


def test_retries_exhausted(client: mm.Client, emu: Emulator) -> None:
    for _ in range(3):
        emu.push_fault({"kind": "throttle"})
    with pytest.raises(mm.exceptions.ThrottlingException) as ei:
        client.resolve_customer(RegistrationToken="reg-token-valid")
    e = ei.value
    assert e.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert e.attempts == 3 and e.retryable is True and e.status_code == 400
    assert "(reached max retries: 2)" in str(e)
    assert e.response["ResponseMetadata"]["MaxAttemptsReached"] is True
    assert isinstance(e, mm.ClientError) and isinstance(e, mm.MeteringError)


def test_a_refusal_after_a_retry_does_not_say_max_retries_were_reached(client: mm.Client, emu: Emulator) -> None:
    # botocore says "(reached max retries: N)" only when its retries ran out
    # (MaxAttemptsReached); a throttle then a refusal is not that.
    emu.push_fault({"kind": "throttle"})
    emu.push_fault({"kind": "error", "status": 400, "code": "InvalidTokenException", "message": "no"})
    with pytest.raises(mm.exceptions.InvalidTokenException) as ei:
        client.resolve_customer(RegistrationToken="reg-token-valid")
    e = ei.value
    assert e.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert "MaxAttemptsReached" not in e.response["ResponseMetadata"]
    assert "reached max retries" not in str(e), str(e)


@pytest.mark.parametrize("mode, marked", [("standard", True), ("legacy", False)])
def test_one_attempt_allowed_is_marked_as_botocore_marks_it(emu: Emulator, mode: str, marked: bool) -> None:
    # botocore's standard mode marks the last allowed attempt whatever the error
    # ("(reached max retries: 0)" with one attempt); its legacy mode only an error it would
    # have retried.
    c = emu.client(config=mm.Config(retries={"total_max_attempts": 1, "mode": mode}))
    emu.push_fault({"kind": "error", "status": 400, "code": "InvalidTokenException", "message": "no"})
    with pytest.raises(mm.exceptions.InvalidTokenException) as ei:
        c.resolve_customer(RegistrationToken="reg-token-valid")
    assert ei.value.response["ResponseMetadata"].get("MaxAttemptsReached", False) is marked
    assert ("(reached max retries: 0)" in str(ei.value)) is marked


def test_retry_config_botocore_meanings(emu: Emulator) -> None:
    c = emu.client(config=mm.Config(retries={"max_attempts": 0}))
    emu.push_fault({"kind": "throttle"})
    with pytest.raises(mm.exceptions.ThrottlingException) as ei:
        c.resolve_customer(RegistrationToken="reg-token-valid")
    assert ei.value.attempts == 1
    c = emu.client(config=mm.Config(retries={"max_attempts": 4, "mode": "adaptive"}))
    assert c._native.max_attempts == 5 and c._native.retry_mode == "adaptive"
    c = emu.client(config=mm.Config(retries={"total_max_attempts": 2, "mode": "legacy"}))
    assert c._native.max_attempts == 2 and c._native.retry_mode == "legacy"
    emu.reset()
    for _ in range(2):
        emu.push_fault({"kind": "internal_error"})
    with pytest.raises(mm.exceptions.InternalServiceErrorException) as ei2:
        c.resolve_customer(RegistrationToken="reg-token-valid")
    assert ei2.value.attempts == 2 and ei2.value.status_code == 500


def test_partial_unprocessed(client: mm.Client, emu: Emulator) -> None:
    emu.push_fault({"kind": "partial", "count": 2})
    recs = records(5)
    resp = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=recs)
    assert len(resp["Results"]) == 3
    assert [u["CustomerIdentifier"] for u in resp["UnprocessedRecords"]] == ["cust-4", "cust-5"]
    resent = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=resp["UnprocessedRecords"])
    assert [r["Status"] for r in resent["Results"]] == ["Success", "Success"]
    assert len(emu.ledger()) == 5


def test_unknown_service_code_is_plain_client_error(client: mm.Client, emu: Emulator) -> None:
    emu.push_fault({"kind": "error", "status": 400, "code": "SomethingNewException", "message": "new"})
    with pytest.raises(mm.ClientError) as ei:
        client.resolve_customer(RegistrationToken="reg-token-valid")
    assert type(ei.value) is mm.ClientError
    assert ei.value.response["Error"] == {"Code": "SomethingNewException", "Message": "new"}


def test_namespaced_common_code(client: mm.Client, emu: Emulator) -> None:
    emu.push_fault({"kind": "error", "status": 400, "code": "AccessDeniedException",
                    "message": "denied", "namespaced": True})
    with pytest.raises(mm.exceptions.AccessDeniedException) as ei:
        client.resolve_customer(RegistrationToken="reg-token-valid")
    assert ei.value.response["Error"]["Message"] == "denied"


def test_bad_credentials(emu: Emulator) -> None:
    c = emu.client(aws_access_key_id="AKIDNOTKNOWN00000000")
    with pytest.raises(mm.exceptions.UnrecognizedClientException):
        c.resolve_customer(RegistrationToken="reg-token-valid")
    c = emu.client(aws_secret_access_key="wrong")
    with pytest.raises(mm.exceptions.InvalidSignatureException):
        c.resolve_customer(RegistrationToken="reg-token-valid")


def test_endpoint_connection_error(emu: Emulator) -> None:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = emu.client(endpoint_url=f"http://127.0.0.1:{port}", config=mm.Config(retries={"max_attempts": 1}))
    with pytest.raises(mm.EndpointConnectionError) as ei:
        c.resolve_customer(RegistrationToken="reg-token-valid")
    assert ei.value.code == "Dispatch" and ei.value.attempts == 2 and ei.value.retryable


def test_read_timeout(emu: Emulator) -> None:
    c = emu.client(config=mm.Config(read_timeout=0.2, retries={"max_attempts": 0}))
    emu.push_fault({"kind": "delay", "seconds": 1.0})
    with pytest.raises(mm.ReadTimeoutError) as ei:
        c.resolve_customer(RegistrationToken="reg-token-valid")
    assert ei.value.code == "ReadTimeout"


def test_client_meta_and_user_agent(client: mm.Client, emu: Emulator) -> None:
    assert client.meta.region_name == "us-east-1"
    assert client.meta.endpoint_url.rstrip("/") == emu.endpoint_url
    v = mm.__version__
    expected = f"marketplace-metering/{v} lang/python/{v} os/{sys.platform}"
    assert client._native.user_agent == expected
    client.resolve_customer(RegistrationToken="reg-token-valid")
    ua = dict(emu.requests()[-1]["headers"])["user-agent"]
    assert ua.startswith(expected), ua


def test_module_client_function(emu: Emulator) -> None:
    c = mm.client("meteringmarketplace", **emu.client_kwargs())
    assert c.resolve_customer(RegistrationToken="reg-token-valid")["CustomerIdentifier"] == "cust-1"


def test_batch_output_keeps_each_results_own_values() -> None:
    # A server (not the emulator) whose results share some timestamps and dimensions and not
    # others, with a status this version does not know: equal values may share one object,
    # but every result keeps its own.
    import http.server
    import json
    import threading

    base = int(now().timestamp()) // 3600 * 3600
    rows = [
        (base, "users", "Success"), (base, "users", "DuplicateRecord"),
        (base - 3600, "gb", "CustomerNotSubscribed"), (base, "users", "Throttled"),
        (base - 3600, "users", "Success"), (base, "gb", "Success"),
    ]
    body = json.dumps({"Results": [
        {"UsageRecord": {"Timestamp": ts, "CustomerIdentifier": f"cust-{i}", "Dimension": dim, "Quantity": i},
         "MeteringRecordId": f"m-{i}", "Status": status}
        for i, (ts, dim, status) in enumerate(rows)
    ], "UnprocessedRecords": [{"Timestamp": base, "CustomerIdentifier": "cust-u", "Dimension": "gb", "Quantity": 9}]}).encode()

    class Canned(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        c = mm.client("meteringmarketplace", region_name="us-east-1",
                      endpoint_url=f"http://127.0.0.1:{srv.server_port}",
                      aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
        resp = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(1))
    finally:
        srv.shutdown()
    got = [(int(r["UsageRecord"]["Timestamp"].timestamp()), r["UsageRecord"]["Dimension"], r["Status"])
           for r in resp["Results"]]
    assert got == rows
    assert [r["UsageRecord"]["CustomerIdentifier"] for r in resp["Results"]] == [f"cust-{i}" for i in range(6)]
    assert [r["MeteringRecordId"] for r in resp["Results"]] == [f"m-{i}" for i in range(6)]
    (u,) = resp["UnprocessedRecords"]
    assert (int(u["Timestamp"].timestamp()), u["Dimension"], u["Quantity"]) == (base, "gb", 9)


def test_a_blocking_call_lets_ctrl_c_and_signal_handlers_run(tmp_path: Path) -> None:
    # A call on the main thread waiting on a server that does not answer ran no Python
    # signal handler until it returned: Ctrl-C did nothing for the whole read timeout, and a
    # SIGTERM handler waited as long. boto3's socket calls take them at once.
    code, took, out, err = interrupt_child(tmp_path / "child.py", "", """
client.batch_meter_usage(ProductCode="prod-1234", UsageRecords=[{
    "Timestamp": 1767225600, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 1}])
""")
    assert code == 7, (code, out, err)
    assert took < 5, took  # the read timeout is 60 s


def test_a_signal_handler_can_make_a_blocking_call_of_its_own(tmp_path: Path) -> None:
    # The handlers run between two turns of the runtime, not inside it: a SIGTERM handler
    # that sends a final record while the main thread waits on a hung server must work
    # (run inside the runtime, its call failed as one made inside an async runtime).
    import subprocess
    script = tmp_path / "child.py"
    script.write_text(HUNG_SERVER_CHILD + """
import signal, datetime
from marketplace_metering.testing import Emulator
emu = Emulator()
good = emu.client()
answers = []
def handler(signum, frame):
    r = good.batch_meter_usage(ProductCode=emu.product_code, UsageRecords=[{
        "Timestamp": datetime.datetime.now(datetime.timezone.utc), "CustomerIdentifier": "cust-1",
        "Dimension": "users", "Quantity": 1}])
    answers.append(r["Results"][0]["Status"])
    raise KeyboardInterrupt
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.3)
try:
    client.batch_meter_usage(ProductCode="prod-1234", UsageRecords=[{
        "Timestamp": 1767225600, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 1}])
except KeyboardInterrupt:
    print(answers, flush=True)
    sys.exit(7)
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=20)
    assert (done.returncode, done.stdout.strip()) == (7, "['Success']"), (done.stdout, done.stderr)



SLOW_CONTAINER_CREDENTIALS = """
import datetime, http.server, json, os, threading, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(2)
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        body = json.dumps({"AccessKeyId": "EMULATORSESSIONKEY01", "SecretAccessKey": "emulator-session-secret",
                           "Token": "emulator-session-token",
                           "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
creds = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
threading.Thread(target=creds.serve_forever, daemon=True).start()
for k in [k for k in os.environ if k.startswith("AWS_")]:
    del os.environ[k]
os.environ.update(AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:%d/creds" % creds.server_port,
                  AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull,
                  AWS_SHARED_CREDENTIALS_FILE=os.devnull)
"""


def test_a_signal_handler_call_does_not_wait_on_the_call_it_interrupted(tmp_path: Path) -> None:
    # The handler runs while the interrupted call is suspended; when that call held a lock
    # the handler's call needs (the credentials it was loading from a slow container
    # endpoint), the handler waited for good (found by a review). The call runs as a task
    # of the runtime, which the handler's call drives.
    import subprocess
    script = tmp_path / "child.py"
    script.write_text(SLOW_CONTAINER_CREDENTIALS + """
import datetime, signal
import marketplace_metering as mm
from marketplace_metering.testing import Emulator
emu = Emulator()
client = mm.Client(region_name=emu.region_name, endpoint_url=emu.endpoint_url)
def send(customer):
    return client.batch_meter_usage(ProductCode=emu.product_code, UsageRecords=[{
        "Timestamp": datetime.datetime.now(datetime.timezone.utc), "CustomerIdentifier": customer,
        "Dimension": "users", "Quantity": 1}])["Results"][0]["Status"]
answers = []
signal.signal(signal.SIGALRM, lambda *_: answers.append(send("cust-2")))
signal.setitimer(signal.ITIMER_REAL, 0.3)
answers.append(send("cust-1"))
print(answers, flush=True)
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout.strip()) == (0, "['Success', 'Success']"), done.stderr


def test_an_interrupted_call_lets_go_of_the_credentials_it_was_loading(tmp_path: Path) -> None:
    # Ctrl-C during the first call, while it loads credentials from a slow container
    # endpoint, then the meter closes on the same client: the aborted call's task kept the
    # credentials lock until some later blocking call drove its runtime, and the meter (which
    # runs on the other runtime) waited for good (found by a review).
    import subprocess
    script = tmp_path / "child.py"
    script.write_text(SLOW_CONTAINER_CREDENTIALS + """
import datetime, signal, time
import marketplace_metering as mm
from marketplace_metering.testing import Emulator, ManualClock
emu = Emulator()
client = mm.Client(region_name=emu.region_name, endpoint_url=emu.endpoint_url)
hour = int(time.time()) // 3600 * 3600 - 3600
clock = ManualClock(hour + 10)
meter = mm.UsageMeter(client, product_code=emu.product_code, clock=clock, flush_interval=None)
def interrupt(*_):
    raise KeyboardInterrupt
signal.signal(signal.SIGALRM, interrupt)
signal.setitimer(signal.ITIMER_REAL, 0.3)
try:
    client.batch_meter_usage(ProductCode=emu.product_code, UsageRecords=[{
        "Timestamp": datetime.datetime.now(datetime.timezone.utc), "CustomerIdentifier": "cust-1",
        "Dimension": "users", "Quantity": 1}])
except KeyboardInterrupt:
    meter.record(customer_identifier="cust-1", dimension="users", quantity=3)
    clock.advance(2 * 3600)
    print(meter.close()["acked"], flush=True)
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=40)
    assert (done.returncode, done.stdout.strip()) == (0, "1"), done.stderr
