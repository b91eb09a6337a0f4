// SPDX-License-Identifier: Apache-2.0
// SigV4 verification failures and protocol strictness (method, path, content type, target).

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use metering_emulator::*;
use serde_json::json;

fn body() -> serde_json::Value {
    json!({"RegistrationToken": "reg-token-valid"})
}

async fn send_signed(emu: &Emulator, signer: &Signer) -> Resp {
    call_as(emu, "ResolveCustomer", body(), signer).await
}

#[tokio::test]
async fn valid_signatures_pass_for_both_identities() {
    let emu = start();
    send_signed(&emu, &Signer::default()).await.expect_ok();
    send_signed(&emu, &Signer::session()).await.expect_ok();
    let log = emu.requests();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|e| e.signature_ok));
    assert_eq!(log[1].access_key_id.as_deref(), Some(SESSION_ACCESS_KEY_ID));
}

/// A session past its expiry is refused `ExpiredTokenException`, as the service refuses an
/// expired STS session; before its expiry it signs as any identity. Before, an identity
/// never expired, so a seller's client that kept a dead session (and a meter behind it)
/// passed every test against the emulator and lost usage in production.
#[tokio::test]
async fn an_expired_session_is_refused_expired_token() {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut cfg = EmulatorConfig::default();
    for c in &mut cfg.credentials {
        c.expires_at = Some(match c.session_token {
            Some(_) => now - 1,
            None => now + 3600,
        });
    }
    let emu = Emulator::start(cfg).unwrap();
    let r = send_signed(&emu, &Signer::session()).await;
    r.expect_error(400, "ExpiredTokenException");
    assert!(r.message().contains("expired"), "{}", r.message());
    send_signed(&emu, &Signer::default()).await.expect_ok();
}

#[tokio::test]
async fn auth_failures() {
    let emu = start();
    let port = emu.port();
    let http = client();

    // Missing Authorization.
    let req = Req::op(port, "ResolveCustomer", &body()).unsigned(port);
    send(&http, req)
        .await
        .unwrap()
        .expect_error(400, "MissingAuthenticationTokenException");

    // Unknown key.
    let s = Signer {
        access_key_id: "AKIDUNKNOWN000000000".into(),
        ..Default::default()
    };
    send_signed(&emu, &s)
        .await
        .expect_error(400, "UnrecognizedClientException");

    // Wrong secret.
    let s = Signer {
        secret_access_key: "wrong".into(),
        ..Default::default()
    };
    let r = send_signed(&emu, &s).await;
    r.expect_error(403, "InvalidSignatureException");
    assert!(r
        .message()
        .contains("signature we calculated does not match"));

    // Session identity without its token; with a wrong token; with the token unsigned.
    let s = Signer {
        session_token: None,
        ..Signer::session()
    };
    send_signed(&emu, &s)
        .await
        .expect_error(400, "UnrecognizedClientException");
    let s = Signer {
        session_token: Some("other".into()),
        ..Signer::session()
    };
    send_signed(&emu, &s)
        .await
        .expect_error(400, "UnrecognizedClientException");
    let s = Signer {
        sign_token: false,
        ..Signer::session()
    };
    send_signed(&emu, &s)
        .await
        .expect_error(400, "IncompleteSignatureException");
    // A token sent for an identity that has none.
    let s = Signer {
        session_token: Some(SESSION_TOKEN.into()),
        ..Default::default()
    };
    send_signed(&emu, &s)
        .await
        .expect_error(400, "UnrecognizedClientException");

    // Stale and future dates.
    let s = Signer {
        time: SystemTime::now() - Duration::from_secs(20 * 60),
        ..Default::default()
    };
    let r = send_signed(&emu, &s).await;
    r.expect_error(400, "InvalidSignatureException");
    assert!(r.message().contains("Signature expired"), "{}", r.message());
    let s = Signer {
        time: SystemTime::now() + Duration::from_secs(20 * 60),
        ..Default::default()
    };
    send_signed(&emu, &s)
        .await
        .expect_error(400, "InvalidSignatureException");

    // Wrong region and wrong service in the scope.
    let s = Signer {
        region: "eu-west-1".into(),
        ..Default::default()
    };
    send_signed(&emu, &s)
        .await
        .expect_error(403, "InvalidSignatureException");
    let s = Signer {
        service: "execute-api".into(),
        ..Default::default()
    };
    send_signed(&emu, &s)
        .await
        .expect_error(403, "InvalidSignatureException");

    // Host not signed.
    let mut req = Req::op(port, "ResolveCustomer", &body()).sign(port, &Signer::default());
    let auth = req.headers()["authorization"]
        .to_str()
        .unwrap()
        .replace("host;", "");
    req.headers_mut()
        .insert("authorization", auth.parse().unwrap());
    send(&http, req)
        .await
        .unwrap()
        .expect_error(400, "IncompleteSignatureException");

    // Malformed Authorization headers.
    for bad in [
        "Bearer abc",
        "AWS4-HMAC-SHA256 Credential=EMULATORKEYID0000001/20240101/us-east-1/aws-marketplace/aws4_request",
        "AWS4-HMAC-SHA256 Credential=EMULATORKEYID0000001/us-east-1/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
    ] {
        let mut req = Req::op(port, "ResolveCustomer", &body()).sign(port, &Signer::default());
        req.headers_mut().insert("authorization", bad.parse().unwrap());
        send(&http, req).await.unwrap().expect_error(400, "IncompleteSignatureException");
    }

    // Body changed after signing.
    let mut req = Req::op(port, "ResolveCustomer", &body()).sign(port, &Signer::default());
    *req.body_mut() = br#"{"RegistrationToken":"reg-token-expired"}"#.to_vec();
    send(&http, req)
        .await
        .unwrap()
        .expect_error(403, "InvalidSignatureException");

    // A signed header changed after signing.
    let mut req = Req::op(port, "ResolveCustomer", &body()).sign(port, &Signer::default());
    req.headers_mut().insert(
        "x-amz-target",
        "AWSMPMeteringService.RegisterUsage".parse().unwrap(),
    );
    send(&http, req)
        .await
        .unwrap()
        .expect_error(403, "InvalidSignatureException");

    let log = emu.requests();
    assert!(log.iter().all(|e| !e.signature_ok));
    assert!(log.iter().all(|e| e.error_code.is_some()));
    assert!(emu.ledger().is_empty());
}

#[tokio::test]
async fn protocol_strictness() {
    let emu = start();
    let port = emu.port();
    let http = client();
    let signer = Signer::default();

    // Unknown operation, missing target.
    let req = Req::op(port, "DeleteEverything", &body()).sign(port, &signer);
    send(&http, req)
        .await
        .unwrap()
        .expect_error(400, "UnknownOperationException");
    let req = Req::op(port, "ResolveCustomer", &body())
        .set_header("x-amz-target", None)
        .sign(port, &signer);
    send(&http, req)
        .await
        .unwrap()
        .expect_error(400, "UnknownOperationException");
    let req = Req::op(port, "ResolveCustomer", &body())
        .set_header("x-amz-target", Some("OtherService.ResolveCustomer"))
        .sign(port, &signer);
    send(&http, req)
        .await
        .unwrap()
        .expect_error(400, "UnknownOperationException");

    // Content type.
    for ct in [
        Some("application/json"),
        Some("application/x-amz-json-1.0"),
        None,
    ] {
        let req = Req::op(port, "ResolveCustomer", &body())
            .set_header("content-type", ct)
            .sign(port, &signer);
        send(&http, req)
            .await
            .unwrap()
            .expect_error(400, "UnknownOperationException");
    }
    // Parameters after the media type are fine.
    let req = Req::op(port, "ResolveCustomer", &body())
        .set_header(
            "content-type",
            Some("application/x-amz-json-1.1; charset=utf-8"),
        )
        .sign(port, &signer);
    send(&http, req).await.unwrap().expect_ok();

    // Other methods and paths.
    let mut r = Req::op(port, "ResolveCustomer", &body());
    r.method = "PUT".into();
    send(&http, r.sign(port, &signer))
        .await
        .unwrap()
        .expect_error(405, "UnknownOperationException");
    let mut r = Req::op(port, "ResolveCustomer", &body());
    r.method = "GET".into();
    r.body.clear();
    send(&http, r.sign(port, &signer))
        .await
        .unwrap()
        .expect_error(405, "UnknownOperationException");
    let mut r = Req::op(port, "ResolveCustomer", &body());
    r.path = "/v1/resolve".into();
    send(&http, r.sign(port, &signer))
        .await
        .unwrap()
        .expect_error(404, "UnknownOperationException");

    // Oversized body.
    let big = vec![b' '; (1 << 20) + 10];
    let req = Req::op(port, "ResolveCustomer", &body())
        .raw_body(&big)
        .sign(port, &signer);
    let r = send(&http, req).await.unwrap();
    assert_eq!(r.status, 413);
    assert!(r.request_id.is_some());
}
