# SPDX-License-Identifier: Apache-2.0
"""The Python face passes its configuration to the core, which resolves it as every face does:
code beats environment beats profile. The core's table test covers every variable and key;
this checks that each Python spelling reaches it and that its errors come back as
``InvalidConfigError`` naming the setting."""

from __future__ import annotations

import base64
import os
import pathlib
import socket
import ssl
import threading
from typing import Iterator, List, Tuple
from urllib.parse import urlparse

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator

TLS = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "tls"

VARS = [
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_MARKETPLACE_METERING",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_CA_BUNDLE", "AWS_SDK_UA_APP_ID",
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> pytest.MonkeyPatch:
    """A clean AWS environment with empty shared files under tmp_path."""
    for k in VARS:
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "config").write_text("")
    (tmp_path / "credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return monkeypatch


KEYS = {"aws_access_key_id": "AKIDTEST", "aws_secret_access_key": "secret-value"}


def test_the_environment_is_read_by_the_core(env: pytest.MonkeyPatch) -> None:
    env.setenv("AWS_REGION", "us-gov-west-1")
    env.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    env.setenv("AWS_MAX_ATTEMPTS", "7")
    env.setenv("AWS_RETRY_MODE", "legacy")
    env.setenv("AWS_SDK_UA_APP_ID", "billing-7")
    env.setenv("HTTPS_PROXY", "http://user:hunter2@proxy.test:3128")
    c = mm.Client(**KEYS)
    n = c._native
    assert c.meta.region_name == "us-gov-west-1"
    assert c.meta.endpoint_url == "https://metering.marketplace-fips.us-gov-west-1.amazonaws.com"
    assert (n.max_attempts, n.retry_mode, n.app_id) == (7, "legacy", "billing-7")
    assert n.origin("max_attempts") == "env:AWS_MAX_ATTEMPTS"
    assert "app/billing-7" in n.user_agent
    assert n.proxies == {"https": "http://***@proxy.test:3128"}
    assert c.meta.config.retries == {"total_max_attempts": 7, "mode": "legacy"}
    assert c.meta.config.use_fips_endpoint is True
    assert "hunter2" not in repr(c) + repr(c.meta.config) + repr(c.meta.config.proxies)


def test_legacy_alone_means_five_attempts(env: pytest.MonkeyPatch) -> None:
    c = mm.Client(region_name="us-east-1", config=mm.Config(retries={"mode": "legacy"}), **KEYS)
    assert (c._native.max_attempts, c._native.retry_mode) == (5, "legacy")


def test_code_beats_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("AWS_REGION", "us-gov-west-1")
    env.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    env.setenv("AWS_MAX_ATTEMPTS", "7")
    env.setenv("AWS_SDK_UA_APP_ID", "from-env")
    cfg = mm.Config(
        retries={"max_attempts": 1, "mode": "adaptive"},
        use_fips_endpoint=False,
        use_dualstack_endpoint=True,
        user_agent_appid="from-code",
        user_agent_extra="extra/1",
        proxies={"https": "http://proxy.test:1", "http": "http://proxy.test:2"},
    )
    c = mm.Client(region_name="eu-west-1", config=cfg, **KEYS)
    n = c._native
    assert c.meta.endpoint_url == "https://metering-marketplace.eu-west-1.api.aws"
    assert (n.max_attempts, n.retry_mode, n.app_id) == (2, "adaptive", "from-code")
    assert n.user_agent.endswith("app/from-code extra/1")
    assert n.proxies == {"https": "http://proxy.test:1", "http": "http://proxy.test:2"}
    assert n.origin("use_fips") == "code" and n.use_dualstack_endpoint


def test_the_profile_is_read_by_the_core(env: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    (tmp_path / "config").write_text(
        "[profile dev]\nregion = ap-south-1\nmax_attempts = 4\nservices = local\n"
        "sdk_ua_app_id = from-profile\n"
        "[services local]\nmarketplace_metering =\n  endpoint_url = http://127.0.0.1:9\n"
    )
    c = mm.Client(profile_name="dev", **KEYS)
    assert (c.meta.region_name, c.meta.endpoint_url) == ("ap-south-1", "http://127.0.0.1:9")
    assert (c._native.max_attempts, c._native.app_id) == (4, "from-profile")
    env.setenv("AWS_PROFILE", "dev")
    env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8")
    c = mm.Client(**KEYS)
    assert c.meta.endpoint_url == "http://127.0.0.1:8"
    assert c._native.origin("endpoint_url") == "env:AWS_ENDPOINT_URL"


def test_a_profile_in_neither_file_is_refused(env: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    # botocore raises ProfileNotFound; read as empty, the environment picked the region and
    # endpoint without what the intended profile held (its FIPS setting, its endpoint).
    (tmp_path / "config").write_text("[profile work]\nregion = us-gov-west-1\nuse_fips_endpoint = true\n")
    env.setenv("AWS_REGION", "us-east-1")
    with pytest.raises(mm.exceptions.InvalidConfigError) as ei:
        mm.Client(profile_name="wrok", **KEYS)
    assert ei.value.field == "profile" and "wrok" in str(ei.value), ei.value
    env.setenv("AWS_PROFILE", "wrok")
    with pytest.raises(mm.exceptions.InvalidConfigError) as ei:
        mm.Client(**KEYS)
    assert ei.value.field == "AWS_PROFILE", ei.value
    env.setenv("AWS_PROFILE", "default")  # default may be absent, as in botocore
    assert mm.Client(**KEYS).meta.region_name == "us-east-1"


@pytest.mark.parametrize(
    "setup, kwargs, field",
    [
        ({"AWS_MAX_ATTEMPTS": "abc"}, {}, "AWS_MAX_ATTEMPTS"),
        ({"AWS_RETRY_MODE": "fast"}, {}, "AWS_RETRY_MODE"),
        ({"AWS_USE_DUALSTACK_ENDPOINT": "yes"}, {}, "AWS_USE_DUALSTACK_ENDPOINT"),
        ({"AWS_CA_BUNDLE": "/nonexistent/ca.pem"}, {}, "AWS_CA_BUNDLE"),
        ({"HTTPS_PROXY": "not a url"}, {}, "HTTPS_PROXY"),
        ({}, {"config": mm.Config(retries={"max_attempts": -1})}, "max_attempts"),
        ({}, {"config": mm.Config(retries={"mode": "fast"})}, "retry_mode"),
        ({}, {"config": mm.Config(connect_timeout=-1)}, "connect_timeout"),
        ({}, {"config": mm.Config(read_timeout=0)}, "read_timeout"),
        ({}, {"config": mm.Config(user_agent_appid="x" * 51)}, "app_id"),
        ({}, {"verify": False}, "verify"),
        ({}, {"verify": "/nonexistent/ca.pem"}, "ca_bundle"),
        ({}, {"verify": pathlib.Path("/nonexistent/ca.pem")}, "ca_bundle"),
        ({}, {"aws_secret_access_key": None}, "aws_secret_access_key"),
        ({}, {"endpoint_url": "http://127.0.0.1:1", "config": mm.Config(use_fips_endpoint=True)}, "endpoint_url"),
    ],
)
def test_bad_settings_are_invalid_config_naming_the_field(
    env: pytest.MonkeyPatch, setup: dict, kwargs: dict, field: str
) -> None:
    for k, v in setup.items():
        env.setenv(k, v)
    args = {"region_name": "us-east-1", **KEYS, **kwargs}
    with pytest.raises(mm.exceptions.InvalidConfigError) as ei:
        mm.Client(**args)
    assert ei.value.field == field, str(ei.value)
    assert "secret-value" not in str(ei.value)


class _FsPath:
    """A path-like that is not a ``pathlib.Path``: ``os.fspath`` gives what it holds."""

    def __init__(self, p: object) -> None:
        self.p = p

    def __fspath__(self) -> object:
        return self.p

    def __repr__(self) -> str:
        return f"_FsPath({self.p!r})"


def test_verify_path_like_reaches_the_core_as_its_path(env: pytest.MonkeyPatch) -> None:
    # boto3 takes a path-like for verify: a missing file is refused as the str spelling is,
    # never dropped for the platform's roots or AWS_CA_BUNDLE.
    env.setenv("AWS_CA_BUNDLE", str(TLS / "ca.pem"))
    for v in (pathlib.Path("/nonexistent/ca.pem"), _FsPath("/nonexistent/ca.pem")):
        with pytest.raises(mm.exceptions.InvalidConfigError) as ei:
            mm.Client(region_name="us-east-1", verify=v, **KEYS)  # type: ignore[arg-type]
        assert ei.value.field == "ca_bundle", str(ei.value)
        assert "/nonexistent/ca.pem" in str(ei.value)


@pytest.mark.parametrize("bad", [b"/x", 1, 0, 1.5, ["/x"], _FsPath(b"/x")], ids=repr)
def test_verify_of_another_type_is_refused_naming_it(env: pytest.MonkeyPatch, bad: object) -> None:
    # Never silently ignored (that would trust the platform's roots or AWS_CA_BUNDLE instead).
    env.setenv("AWS_CA_BUNDLE", str(TLS / "ca.pem"))
    with pytest.raises(TypeError) as ei:
        mm.Client(region_name="us-east-1", verify=bad, **KEYS)  # type: ignore[arg-type]
    assert "verify" in str(ei.value), str(ei.value)


def test_config_shapes_are_checked_as_botocore_does() -> None:
    with pytest.raises(ValueError):
        mm.Config(proxies={"ftp": "http://proxy.test:1"})
    with pytest.raises(ValueError):
        mm.Config(retries={"attempts": 1})


# --- TLS and proxies on 127.0.0.1 -------------------------------------------------------


def _pump(a: socket.socket, b: socket.socket) -> None:
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _splice(a: socket.socket, b: socket.socket) -> None:
    threading.Thread(target=_pump, args=(a, b), daemon=True).start()
    threading.Thread(target=_pump, args=(b, a), daemon=True).start()


def _serve(handle) -> Tuple[str, socket.socket]:  # type: ignore[no-untyped-def]
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)

    def loop() -> None:
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    host, port = lsock.getsockname()
    return f"{host}:{port}", lsock


@pytest.fixture
def https_emu(emu: Emulator) -> Iterator[str]:
    """The emulator behind a TLS forwarder whose certificate testdata/tls/ca.pem signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS / "server.pem", TLS / "server.key")
    up = urlparse(emu.endpoint_url)

    def handle(conn: socket.socket) -> None:
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        upstream = socket.create_connection((up.hostname, up.port))
        _splice(tls, upstream)

    addr, lsock = _serve(handle)
    yield f"https://{addr}"
    lsock.close()


@pytest.fixture
def proxy() -> Iterator[Tuple[str, List[str]]]:
    """A forward proxy on 127.0.0.1 that records each CONNECT it tunnels."""
    seen: List[str] = []

    def handle(conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        method, target, _ = line.split(" ", 2)
        auth = [h.split(b":", 1)[1].strip().decode() for h in head.split(b"\r\n")
                if h.lower().startswith(b"proxy-authorization:")]
        seen.append(" ".join([method, target, *auth]))
        if method != "CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        _splice(conn, upstream)

    addr, lsock = _serve(handle)
    yield f"http://{addr}", seen
    lsock.close()


def _call(c: mm.Client) -> None:
    c.resolve_customer(RegistrationToken="reg-token-valid")


def test_verify_path_trusts_that_ca_only(env: pytest.MonkeyPatch, emu: Emulator, https_emu: str) -> None:
    kw = {**emu.client_kwargs(), "endpoint_url": https_emu, "config": mm.Config(retries={"total_max_attempts": 1})}
    with pytest.raises(mm.EndpointConnectionError):
        _call(mm.Client(**kw))
    _call(mm.Client(verify=str(TLS / "ca.pem"), **kw))
    _call(mm.Client(verify=TLS / "ca.pem", **kw))
    env.setenv("AWS_CA_BUNDLE", str(TLS / "ca.pem"))
    _call(mm.Client(**kw))
    _call(mm.Client(verify=True, **kw))


def test_proxies_from_config_and_environment(
    env: pytest.MonkeyPatch, emu: Emulator, https_emu: str, proxy: Tuple[str, List[str]]
) -> None:
    url, seen = proxy
    kw = {**emu.client_kwargs(), "endpoint_url": https_emu, "verify": str(TLS / "ca.pem")}
    _call(mm.Client(config=mm.Config(proxies={"https": url}), **kw))
    assert seen == [f"CONNECT {https_emu[len('https://'):]}"]
    env.setenv("HTTPS_PROXY", url)
    _call(mm.Client(**kw))
    assert len(seen) == 2
    env.setenv("NO_PROXY", "127.0.0.1")
    _call(mm.Client(**kw))
    assert len(seen) == 2


def test_a_config_passed_on_still_reaches_the_proxy(
    env: pytest.MonkeyPatch, emu: Emulator, https_emu: str, proxy: Tuple[str, List[str]]
) -> None:
    """``client.meta.config`` holds the proxies as given: passed to another client (a client
    per thread), the proxy still gets the password. It held the core's masked copy, so the
    second client sent ``***``."""
    url, seen = proxy
    with_auth = url.replace("http://", "http://meter:s3cret@")
    kw = {**emu.client_kwargs(), "endpoint_url": https_emu, "verify": str(TLS / "ca.pem")}
    first = mm.Client(config=mm.Config(proxies={"https": with_auth}), **kw)
    assert first.meta.config.proxies == {"https": with_auth}
    assert "s3cret" not in repr(first) + repr(first.meta.config)
    _call(mm.Client(config=first.meta.config, **kw))
    basic = "Basic " + base64.b64encode(b"meter:s3cret").decode()
    assert seen == [f"CONNECT {https_emu[len('https://'):]} {basic}"]


def test_a_botocore_config_and_client_arguments_are_taken(emu: Emulator) -> None:
    """A ``Config`` and ``client()`` call written for boto3 work unchanged (they were a
    TypeError): options that mean nothing here are kept; those this client cannot honour
    are refused, naming them; unknown names are a TypeError, as in botocore."""
    cfg = mm.Config(
        signature_version="v4", retries={"max_attempts": 2, "mode": "standard"}, s3={},
        inject_host_prefix=False, defaults_mode="standard", parameter_validation=True,
        request_checksum_calculation="when_required", tcp_keepalive=True,
    )
    assert cfg.signature_version == "v4" and cfg.defaults_mode == "standard"
    merged = cfg.merge(mm.Config(connect_timeout=3))
    assert (merged.signature_version, merged.connect_timeout) == ("v4", 3)
    # A Config from before these options (unpickled) merges too.
    old = mm.Config(connect_timeout=4)
    for k in ("signature_version", "s3", "defaults_mode"):
        old.__dict__.pop(k, None)
    assert mm.Config().merge(old).connect_timeout == 4
    assert old.merge(cfg).signature_version == "v4"
    with mm.client("meteringmarketplace", config=cfg, use_ssl=True, api_version="2016-01-14",
                   aws_account_id="123456789012", **emu.client_kwargs()) as c:
        c.resolve_customer(RegistrationToken="reg-token-valid")
        assert c.meta.config.signature_version == "v4"
    for kw, name in (
        ({"signature_version": "s3v4"}, "signature_version"),
        ({"signature_version": object()}, "signature_version"),  # botocore.UNSIGNED
        ({"user_agent": "mine/1"}, "user_agent"),
        ({"client_cert": "/c.pem"}, "client_cert"),
        ({"proxies_config": {"proxy_ca_bundle": "/ca.pem"}}, "proxies_config"),
        ({"parameter_validation": False}, "parameter_validation"),
    ):
        with pytest.raises(ValueError, match=name):
            mm.Config(**kw)
    with pytest.raises(TypeError, match="retry_mode"):
        mm.Config(retry_mode="standard")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="api_version"):
        mm.Client(api_version="2015-01-01", **emu.client_kwargs())
    with pytest.raises(ValueError, match="use_ssl"):
        mm.Client(use_ssl=False, region_name="us-east-1")
    # With an endpoint URL the URL says the scheme, as in botocore.
    mm.Client(use_ssl=False, **emu.client_kwargs())


# --- the surface a boto3 user touches -----------------------------------------------------


def test_meta_config_close_and_context_managers(emu: Emulator) -> None:
    with emu.client(config=mm.Config(retries={"mode": "adaptive"}, user_agent_appid="app-1")) as c:
        assert c.meta.config.retries == {"total_max_attempts": 3, "mode": "adaptive"}
        assert c.meta.config.user_agent_appid == "app-1"
        assert c.meta.config.region_name == c.meta.region_name
        c.resolve_customer(RegistrationToken="reg-token-valid")
        assert c._native.close() == 1  # the pool the call used was open
    assert c._native.close() == 0  # __exit__ closed it
    c.resolve_customer(RegistrationToken="reg-token-valid")  # a later call opens a new pool
    c.close()
    assert c._native.close() == 0


async def test_async_with_closes(emu: Emulator) -> None:
    async with emu.async_client() as c:
        await c.resolve_customer(RegistrationToken="reg-token-valid")
    assert c._native.close() == 0


def test_paginators_as_boto3_for_an_api_without_them(client: mm.Client) -> None:
    for op in ("batch_meter_usage", "meter_usage", "resolve_customer", "register_usage"):
        assert client.can_paginate(op) is False
        with pytest.raises(mm.OperationNotPageableError) as ei:
            client.get_paginator(op)
        assert str(ei.value) == f"Operation cannot be paginated: {op}"
        assert ei.value.operation_name == op


def test_a_host_without_ca_certificates_still_meters_over_http(tmp_path: pathlib.Path, https_emu: str) -> None:
    # A scratch or distroless container has no CA certificates. Against a plain-HTTP endpoint
    # (the emulator, a sidecar) nothing needs them, yet building the client loaded the
    # platform's roots and refused to start without any. The roots are now loaded by the
    # first TLS handshake, which still fails, naming the cause, when there are none; a CA
    # bundle of the caller's own needs no platform roots at all.
    import subprocess
    import sys
    empty = tmp_path / "no-certs"
    empty.mkdir()
    script = tmp_path / "child.py"
    script.write_text(f"""
import marketplace_metering as mm
from marketplace_metering.testing import Emulator
emu = Emulator()
kw = emu.client_kwargs()
print(mm.Client(**kw).resolve_customer(RegistrationToken="reg-token-valid")["ProductCode"])
kw["endpoint_url"] = "{https_emu}"
kw["config"] = mm.Config(retries={{"total_max_attempts": 1}})
try:
    mm.Client(**kw).resolve_customer(RegistrationToken="reg-token-valid")
except mm.EndpointConnectionError as e:
    print("refused:", "certificate" in str(e).lower())
print(mm.Client(verify={str(TLS / "ca.pem")!r}, **kw).resolve_customer(
    RegistrationToken="reg-token-valid")["ProductCode"] == emu.product_code)
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "CERT" not in k}
    env.update(SSL_CERT_FILE=str(empty / "none.pem"), SSL_CERT_DIR=str(empty),
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[1:] == ["refused: True", "True", ""], done.stdout
