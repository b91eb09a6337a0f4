// SPDX-License-Identifier: Apache-2.0
// Shared test helpers: sign requests with aws-sigv4 and send them with reqwest or raw TCP.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{
    sign, SessionTokenMode, SignableBody, SignableRequest, SigningSettings,
};
use metering_emulator::*;
use serde_json::{json, Value};

/// Who signs, and how.
#[derive(Clone, Debug)]
pub struct Signer {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
    pub service: String,
    pub time: SystemTime,
    /// Sign the session token (aws-sigv4 `SessionTokenMode::Include`).
    pub sign_token: bool,
}

impl Default for Signer {
    fn default() -> Self {
        Signer {
            access_key_id: DEFAULT_ACCESS_KEY_ID.into(),
            secret_access_key: DEFAULT_SECRET_ACCESS_KEY.into(),
            session_token: None,
            region: DEFAULT_REGION.into(),
            service: "aws-marketplace".into(),
            time: SystemTime::now(),
            sign_token: true,
        }
    }
}

impl Signer {
    pub fn session() -> Self {
        Signer {
            access_key_id: SESSION_ACCESS_KEY_ID.into(),
            secret_access_key: SESSION_SECRET_ACCESS_KEY.into(),
            session_token: Some(SESSION_TOKEN.into()),
            ..Default::default()
        }
    }
}

/// A request under construction.
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    /// POST / with the awsJson1.1 headers for `op`.
    pub fn op(port: u16, op: &str, body: &Value) -> Req {
        Req {
            method: "POST".into(),
            path: "/".into(),
            headers: vec![
                ("host".into(), format!("127.0.0.1:{port}")),
                ("content-type".into(), "application/x-amz-json-1.1".into()),
                ("x-amz-target".into(), format!("AWSMPMeteringService.{op}")),
            ],
            body: serde_json::to_vec(body).unwrap(),
        }
    }

    pub fn raw_body(mut self, body: &[u8]) -> Req {
        self.body = body.to_vec();
        self
    }

    pub fn set_header(mut self, name: &str, value: Option<&str>) -> Req {
        self.headers.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.headers.push((name.into(), v.into()));
        }
        self
    }

    /// Signs with aws-sigv4 and returns the final http request.
    pub fn sign(self, port: u16, signer: &Signer) -> http::Request<Vec<u8>> {
        let identity: aws_smithy_runtime_api::client::identity::Identity =
            aws_credential_types::Credentials::new(
                &signer.access_key_id,
                &signer.secret_access_key,
                signer.session_token.clone(),
                None,
                "test",
            )
            .into();
        let mut settings = SigningSettings::default();
        if !signer.sign_token {
            settings.session_token_mode = SessionTokenMode::Exclude;
        }
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&signer.region)
            .name(&signer.service)
            .time(signer.time)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let url = format!("http://127.0.0.1:{port}{}", self.path);
        let signable = SignableRequest::new(
            &self.method,
            &url,
            self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&self.body),
        )
        .unwrap();
        let (instructions, _sig) = sign(signable, &params).unwrap().into_parts();
        let mut req = self.unsigned(port);
        instructions.apply_to_request_http1x(&mut req);
        if let (Some(token), false) = (&signer.session_token, signer.sign_token) {
            req.headers_mut()
                .insert("x-amz-security-token", token.parse().unwrap());
        }
        req
    }

    /// The request without any signature.
    pub fn unsigned(self, port: u16) -> http::Request<Vec<u8>> {
        let mut b = http::Request::builder()
            .method(self.method.as_str())
            .uri(format!("http://127.0.0.1:{port}{}", self.path));
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        b.body(self.body).unwrap()
    }
}

/// A response, decoded.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
    /// `x-amzn-ErrorType`, which AWS JSON services send with every error answer.
    pub error_type_header: Option<String>,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn error_type(&self) -> &str {
        self.json["__type"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or("")
    }
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status, self.error_type()),
            (status, code),
            "unexpected answer: {self:?}"
        );
        assert!(self.request_id.is_some(), "no request id: {self:?}");
        // As the service: `Code:` and where it came from, the code unqualified.
        let short = code.rsplit('#').next().unwrap_or(code);
        assert!(
            self.error_type_header
                .as_deref()
                .is_some_and(|h| h.split(':').next() == Some(short)),
            "x-amzn-ErrorType does not name {short}: {self:?}"
        );
        self
    }
    pub fn expect_ok(&self) -> &Value {
        assert_eq!(self.status, 200, "unexpected answer: {self:?}");
        assert!(self.request_id.is_some());
        &self.json
    }
}

pub fn client() -> reqwest::Client {
    // The workspace builds reqwest without a default crypto provider (one TLS stack, see
    // core/src/tls.rs); these tests speak plain HTTP but reqwest still wants one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn send(
    http: &reqwest::Client,
    req: http::Request<Vec<u8>>,
) -> Result<Resp, reqwest::Error> {
    let req = reqwest::Request::try_from(req).unwrap();
    let resp = http.execute(req).await?;
    let status = resp.status().as_u16();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let request_id = header("x-amzn-requestid");
    let content_type = header("content-type");
    let error_type_header = header("x-amzn-errortype");
    let text = resp.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Resp {
        status,
        request_id,
        content_type,
        error_type_header,
        text,
        json,
    })
}

/// Signs with the default identity and sends.
pub async fn call(emu: &Emulator, op: &str, body: Value) -> Resp {
    call_as(emu, op, body, &Signer::default()).await
}

pub async fn call_as(emu: &Emulator, op: &str, body: Value, signer: &Signer) -> Resp {
    let req = Req::op(emu.port(), op, &body).sign(emu.port(), signer);
    send(&client(), req).await.unwrap()
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The start of the current hour (always inside the window).
pub fn this_hour() -> i64 {
    (now() as i64 / 3600) * 3600
}

pub fn record(customer: &str, dimension: &str, quantity: i64) -> Value {
    json!({"Timestamp": now() as i64, "CustomerIdentifier": customer, "Dimension": dimension, "Quantity": quantity})
}

pub fn batch(records: Vec<Value>) -> Value {
    json!({"ProductCode": PRODUCT_CODE, "UsageRecords": records})
}

pub fn start() -> Emulator {
    Emulator::start(EmulatorConfig::default()).unwrap()
}

/// GET/POST/PUT on the control API.
pub async fn control(emu: &Emulator, method: &str, path: &str, body: Option<Value>) -> Resp {
    let mut b = client().request(method.parse().unwrap(), format!("{}{path}", emu.endpoint()));
    if let Some(body) = body {
        b = b.body(body.to_string());
    }
    let resp = b.send().await.unwrap();
    let status = resp.status().as_u16();
    let request_id = resp
        .headers()
        .get("x-amzn-requestid")
        .map(|v| v.to_str().unwrap().to_string());
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let error_type_header = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        request_id,
        content_type,
        error_type_header,
        text,
        json,
    }
}

/// Serializes an http request as HTTP/1.1 bytes (for raw-socket tests).
pub fn to_wire(req: &http::Request<Vec<u8>>) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method(), req.uri().path()).into_bytes();
    for (k, v) in req.headers() {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", req.body().len()).as_bytes());
    out.extend_from_slice(req.body());
    out
}

/// Reads one HTTP/1.1 response (Content-Length framed) from a blocking stream.
pub fn read_response(stream: &mut impl std::io::Read) -> std::io::Result<(u16, String, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before headers",
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok((status, head, String::from_utf8_lossy(&body).to_string()))
}
