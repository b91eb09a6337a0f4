// SPDX-License-Identifier: Apache-2.0
// HTTP front end: hyper on loopback, routing, fault injection, the request log and the control API.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::config::EmulatorConfig;
use crate::error::ApiError;
use crate::service::{lock, new_id, Service};
use crate::sigv4;
use crate::time::{format_http_date, now_f64, now_secs};
use crate::types::{Fault, RequestLogEntry};

/// The awsJson1.1 media type.
pub(crate) const JSON_11: &str = "application/x-amz-json-1.1";
/// The `X-Amz-Target` prefix of this service.
pub(crate) const TARGET_PREFIX: &str = "AWSMPMeteringService.";
const OPERATIONS: [&str; 4] = [
    "BatchMeterUsage",
    "MeterUsage",
    "ResolveCustomer",
    "RegisterUsage",
];

/// A request as remembered by the log (converted to [`RequestLogEntry`] on demand).
///
/// Headers and body are copied into compact buffers: keeping hyper's `Bytes` would pin
/// its read buffers and force a fresh allocation (and page faults) for every request.
struct LogRecord {
    request_id: String,
    time: f64,
    method: Method,
    path: String,
    /// `name\0value\0` pairs.
    headers: Vec<u8>,
    body: Box<[u8]>,
    operation: Option<&'static str>,
    status: u16,
    error_code: Option<String>,
    signature_ok: bool,
    access_key_id: Option<String>,
    fault: Option<Fault>,
    connection: u64,
}

impl LogRecord {
    fn pack_headers(headers: &HeaderMap) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        for (k, v) in headers {
            out.extend_from_slice(k.as_str().as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    fn to_entry(&self) -> RequestLogEntry {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut parts = self.headers.split(|b| *b == 0);
        while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
            headers.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        let target = headers
            .iter()
            .find(|(k, _)| k == "x-amz-target")
            .map(|(_, v)| v.clone());
        RequestLogEntry {
            request_id: self.request_id.clone(),
            time: self.time,
            method: self.method.to_string(),
            path: self.path.clone(),
            target,
            operation: self.operation.map(str::to_string),
            status: self.status,
            error_code: self.error_code.clone(),
            signature_ok: self.signature_ok,
            access_key_id: self.access_key_id.clone(),
            header_names: headers.iter().map(|(k, _)| k.clone()).collect(),
            headers,
            body: String::from_utf8_lossy(&self.body).into_owned(),
            fault: self.fault.clone(),
            connection: self.connection,
        }
    }
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub service: Service,
    log: Mutex<VecDeque<LogRecord>>,
    faults: Mutex<VecDeque<Fault>>,
    fault_count: AtomicUsize,
    /// TCP connections accepted so far; each request is logged with its connection's number.
    connections: AtomicU64,
}

impl Shared {
    pub fn new(config: EmulatorConfig) -> io::Result<Shared> {
        Ok(Shared {
            service: Service::new(config)?,
            log: Mutex::new(VecDeque::new()),
            faults: Mutex::new(VecDeque::new()),
            fault_count: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
        })
    }

    pub fn push_fault(&self, fault: Fault) {
        let mut q = lock(&self.faults);
        q.push_back(fault);
        self.fault_count.store(q.len(), Ordering::SeqCst);
    }

    fn pop_fault(&self) -> Option<Fault> {
        if self.fault_count.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut q = lock(&self.faults);
        let f = q.pop_front();
        self.fault_count.store(q.len(), Ordering::SeqCst);
        f
    }

    pub fn faults(&self) -> Vec<Fault> {
        lock(&self.faults).iter().cloned().collect()
    }

    pub fn requests(&self) -> Vec<RequestLogEntry> {
        lock(&self.log).iter().map(LogRecord::to_entry).collect()
    }

    /// Clears ledger, tables, request log and faults.
    pub fn reset(&self) -> io::Result<()> {
        {
            let mut q = lock(&self.faults);
            q.clear();
            self.fault_count.store(0, Ordering::SeqCst);
        }
        lock(&self.log).clear();
        self.service.reset()
    }

    fn log(&self, record: LogRecord, limit: usize) {
        let mut log = lock(&self.log);
        log.push_back(record);
        while log.len() > limit {
            log.pop_front();
        }
    }
}

/// Returned by the service function to make hyper drop the connection unanswered.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by injected fault")
    }
}

impl std::error::Error for ResetConnection {}

/// A TCP stream that, when flagged, closes with RST (zero linger) instead of FIN.
struct ResetOnDrop {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ResetOnDrop {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnDrop {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accepts connections until `shutdown` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let connection = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
                tokio::spawn(async move {
                    let reset = Arc::new(AtomicBool::new(false));
                    let io = TokioIo::new(ResetOnDrop { inner: stream, reset: reset.clone() });
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        let reset = reset.clone();
                        async move { handle(shared, reset, connection, req).await }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(io, svc)
                        .await;
                });
            }
        }
    }
}

type Resp = Response<Body>;

/// A response body: whole, or sent one byte per interval (the `trickle` fault).
pub(crate) enum Body {
    Full(Full<Bytes>),
    Trickle {
        data: Bytes,
        interval: Duration,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    },
    /// Announces `declared` bytes and sends only `data` (the `short_body` fault).
    /// A pause after the data lets hyper flush it before the connection ends.
    Short {
        data: Option<Bytes>,
        declared: u64,
        pause: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

impl Body {
    fn into_bytes(self) -> Bytes {
        match self {
            Body::Full(f) => f.into_inner().unwrap_or_default(),
            Body::Trickle { data, .. } => data,
            Body::Short { data, .. } => data.unwrap_or_default(),
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Full(f) => Pin::new(f).poll_frame(cx),
            Body::Trickle {
                data,
                interval,
                sleep,
            } => {
                if data.is_empty() {
                    return Poll::Ready(None);
                }
                let timer = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(*interval)));
                if std::future::Future::poll(timer.as_mut(), cx).is_pending() {
                    return Poll::Pending;
                }
                *sleep = None;
                Poll::Ready(Some(Ok(hyper::body::Frame::data(data.split_to(1)))))
            }
            Body::Short { data, pause, .. } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(hyper::body::Frame::data(d))));
                }
                let timer = pause
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(50))));
                match std::future::Future::poll(timer.as_mut(), cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(f) => f.is_end_stream(),
            Body::Trickle { data, .. } => data.is_empty(),
            Body::Short { .. } => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Body::Full(f) => f.size_hint(),
            Body::Trickle { data, .. } => hyper::body::SizeHint::with_exact(data.len() as u64),
            Body::Short { declared, .. } => hyper::body::SizeHint::with_exact(*declared),
        }
    }
}

fn response(status: u16, content_type: &str, body: impl Into<Bytes>, request_id: &str) -> Resp {
    let mut resp = Response::new(Body::Full(Full::new(body.into())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

fn error_response(e: &ApiError, request_id: &str) -> Resp {
    let mut resp = response(e.status, JSON_11, e.body(), request_id);
    // As AWS JSON services answer: the code, a colon and the source (a client reading the
    // header before the body finds the same code in both).
    let source = "http://internal.amazon.com/coral/com.amazonaws.marketplace.metering/";
    if let Ok(v) = HeaderValue::from_str(&format!("{}:{source}", e.code)) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

const UNAVAILABLE_HTML: &str = "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n<body><h1>503 Service Unavailable</h1><p>The service is temporarily unavailable. Please try again later.</p></body></html>\n";

/// Answers one request; with a clock offset, its `Date` is the emulator's clock.
async fn handle(
    shared: Arc<Shared>,
    reset: Arc<AtomicBool>,
    connection: u64,
    req: Request<Incoming>,
) -> Result<Resp, ResetConnection> {
    let offset = shared.service.catalog().config.clock_offset_secs;
    let mut result = handle_request(shared, reset, connection, req).await;
    if let (Ok(resp), true) = (&mut result, offset != 0) {
        if let Ok(v) = HeaderValue::from_str(&format_http_date(now_secs() + offset)) {
            resp.headers_mut().insert(http::header::DATE, v);
        }
    }
    result
}

async fn handle_request(
    shared: Arc<Shared>,
    reset: Arc<AtomicBool>,
    connection: u64,
    req: Request<Incoming>,
) -> Result<Resp, ResetConnection> {
    let request_id = new_id();
    let time = now_f64();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return Ok(control(&shared, &parts, body, &request_id).await);
    }
    let catalog = shared.service.catalog();
    let body = match Limited::new(body, catalog.config.max_body_bytes)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                let err = ApiError::new(
                    413,
                    "RequestEntityTooLargeException",
                    format!(
                        "Request body is larger than {} bytes.",
                        catalog.config.max_body_bytes
                    ),
                );
                shared.log(
                    LogRecord {
                        request_id: request_id.clone(),
                        time,
                        method: parts.method.clone(),
                        path: path.to_string(),
                        headers: LogRecord::pack_headers(&parts.headers),
                        body: Box::default(),
                        operation: operation_of(&parts.headers),
                        status: 413,
                        error_code: Some(err.code.to_string()),
                        signature_ok: false,
                        access_key_id: None,
                        fault: None,
                        connection,
                    },
                    catalog.config.request_log_limit,
                );
                return Ok(error_response(&err, &request_id));
            }
            return Err(ResetConnection);
        }
    };
    let fault = shared.pop_fault();
    let mut rec = LogRecord {
        request_id: request_id.clone(),
        time,
        method: parts.method.clone(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.to_string()),
        headers: LogRecord::pack_headers(&parts.headers),
        body: body.to_vec().into_boxed_slice(),
        operation: None,
        status: 0,
        error_code: None,
        signature_ok: false,
        access_key_id: None,
        fault: fault.clone(),
        connection,
    };
    let limit = catalog.config.request_log_limit;

    let mut partial = 0usize;
    let mut truncate = false;
    let mut short = false;
    let mut trickle = None;
    let early: Option<Result<Resp, ResetConnection>> = match &fault {
        None => None,
        Some(Fault::Delay { seconds }) => {
            if seconds.is_finite() && *seconds > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(seconds.min(3600.0))).await;
            }
            None
        }
        Some(Fault::Partial { count }) => {
            partial = *count;
            None
        }
        Some(Fault::Truncated) => {
            truncate = true;
            None
        }
        Some(Fault::ShortBody) => {
            short = true;
            None
        }
        Some(Fault::Trickle { interval }) => {
            trickle = Some(Duration::from_secs_f64(interval.clamp(0.0, 3600.0)));
            None
        }
        Some(Fault::Redirect { status, location }) => {
            let mut resp = response(*status, "text/plain", "", &request_id);
            if let Ok(v) = HeaderValue::from_str(location) {
                resp.headers_mut().insert(http::header::LOCATION, v);
            }
            Some(Ok(resp))
        }
        Some(Fault::Oversize { bytes }) => {
            let mut body = vec![b' '; (*bytes).max(2)];
            body[0] = b'{';
            if let Some(last) = body.last_mut() {
                *last = b'}';
            }
            Some(Ok(response(200, JSON_11, body, &request_id)))
        }
        Some(Fault::Throttle) => Some(Ok(error_response(
            &ApiError::client("ThrottlingException", "Rate exceeded"),
            &request_id,
        ))),
        Some(Fault::InternalError) => Some(Ok(error_response(
            &ApiError::new(
                500,
                "InternalServiceErrorException",
                "An internal error has occurred.",
            ),
            &request_id,
        ))),
        Some(Fault::Unavailable) => Some(Ok(response(
            503,
            "text/html",
            UNAVAILABLE_HTML,
            &request_id,
        ))),
        Some(Fault::Garbage) => Some(Ok(response(
            200,
            JSON_11,
            "<html><body>this is not JSON</body></html>",
            &request_id,
        ))),
        Some(Fault::Reset) => {
            reset.store(true, Ordering::SeqCst);
            Some(Err(ResetConnection))
        }
        Some(Fault::Error {
            status,
            code,
            message,
            namespaced,
        }) => {
            let mut e = ApiError::new(*status, code.clone(), message.clone());
            e.namespaced = *namespaced;
            Some(Ok(error_response(&e, &request_id)))
        }
    };
    if let Some(result) = early {
        rec.operation = operation_of(&parts.headers);
        match &result {
            Ok(resp) => {
                rec.status = resp.status().as_u16();
                rec.error_code = fault_code(fault.as_ref());
            }
            Err(_) => rec.status = 0,
        }
        shared.log(rec, limit);
        return result;
    }

    let result = process(&shared, &parts, &body, partial, &mut rec);
    let mut resp = match result {
        Ok(out) => {
            rec.status = 200;
            response(200, JSON_11, out, &request_id)
        }
        Err(e) => {
            rec.status = e.status;
            rec.error_code = Some(e.code.to_string());
            error_response(&e, &request_id)
        }
    };
    if truncate || short || trickle.is_some() {
        let body = std::mem::replace(resp.body_mut(), Body::Full(Full::default()));
        let bytes = body.into_bytes();
        if truncate {
            *resp.status_mut() = StatusCode::OK;
            rec.status = 200;
        }
        *resp.body_mut() = match trickle {
            Some(interval) => Body::Trickle {
                data: bytes,
                interval,
                sleep: None,
            },
            None if short => Body::Short {
                declared: bytes.len() as u64,
                data: Some(bytes.slice(..bytes.len() / 2)),
                pause: None,
            },
            None => Body::Full(Full::new(
                bytes.slice(..(bytes.len() / 2).max(1).min(bytes.len())),
            )),
        };
    }
    shared.log(rec, limit);
    Ok(resp)
}

fn fault_code(f: Option<&Fault>) -> Option<String> {
    match f? {
        Fault::Throttle => Some("ThrottlingException".into()),
        Fault::InternalError => Some("InternalServiceErrorException".into()),
        Fault::Unavailable => Some("ServiceUnavailable".into()),
        Fault::Error { code, .. } => Some(code.clone()),
        _ => None,
    }
}

fn operation_of(headers: &HeaderMap) -> Option<&'static str> {
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    let op = target.strip_prefix(TARGET_PREFIX)?;
    OPERATIONS.iter().copied().find(|o| *o == op)
}

/// Protocol checks, authentication and dispatch for one service request.
fn process(
    shared: &Shared,
    parts: &http::request::Parts,
    body: &[u8],
    partial: usize,
    rec: &mut LogRecord,
) -> Result<Vec<u8>, ApiError> {
    let path = parts.uri.path();
    if path != "/" {
        return Err(ApiError::new(
            404,
            "UnknownOperationException",
            format!("No such resource: {path}. The service only accepts POST /."),
        ));
    }
    if parts.method != Method::POST {
        return Err(ApiError::new(
            405,
            "UnknownOperationException",
            format!(
                "Method {} is not allowed. The service only accepts POST /.",
                parts.method
            ),
        ));
    }
    let catalog = shared.service.catalog();
    let verified = sigv4::verify(
        parts.method.as_str(),
        path,
        parts.uri.query().unwrap_or(""),
        &parts.headers,
        body,
        &catalog,
        now_secs() + catalog.config.clock_offset_secs,
    );
    rec.access_key_id = verified.access_key_id;
    verified.result?;
    rec.signature_ok = true;

    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(JSON_11) {
        return Err(ApiError::client(
            "UnknownOperationException",
            format!("Content-Type must be {JSON_11}, got '{content_type}'."),
        ));
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(op) = operation_of(&parts.headers) else {
        return Err(ApiError::client(
            "UnknownOperationException",
            match target {
                Some(t) => format!("Unknown operation: X-Amz-Target '{t}'."),
                None => "Missing X-Amz-Target header.".to_string(),
            },
        ));
    };
    rec.operation = Some(op);
    let now = now_f64() + catalog.config.clock_offset_secs as f64;
    let service = &shared.service;
    match op {
        "BatchMeterUsage" => service.batch_meter_usage(&catalog, body, partial, now),
        "MeterUsage" => {
            let ak = rec.access_key_id.as_deref().unwrap_or_default();
            service.meter_usage(&catalog, ak, body, now)
        }
        "ResolveCustomer" => service.resolve_customer(&catalog, body),
        _ => service.register_usage(&catalog, body, now),
    }
}

fn json_response<T: serde::Serialize>(status: u16, v: &T, request_id: &str) -> Resp {
    match serde_json::to_vec(v) {
        Ok(b) => response(status, "application/json", b, request_id),
        Err(e) => control_error(500, "InternalError", &e.to_string(), request_id),
    }
}

fn control_error(status: u16, code: &str, message: &str, request_id: &str) -> Resp {
    let body = serde_json::json!({ "__type": code, "message": message }).to_string();
    response(status, "application/json", body, request_id)
}

/// The control API under `/_emulator/` (no authentication, never consumes faults).
async fn control(
    shared: &Shared,
    parts: &http::request::Parts,
    body: Incoming,
    request_id: &str,
) -> Resp {
    let body = match Limited::new(body, 64 << 20).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return control_error(400, "BadRequest", &e.to_string(), request_id),
    };
    let path = parts.uri.path().trim_end_matches('/');
    let m = &parts.method;
    let bad_json = |e: serde_json::Error| {
        control_error(400, "SerializationException", &e.to_string(), request_id)
    };
    match (path, m.as_str()) {
        ("/_emulator/health", "GET") => {
            let cat = shared.service.catalog();
            json_response(
                200,
                &serde_json::json!({ "status": "ok", "port": cat.config.port, "region": cat.config.region }),
                request_id,
            )
        }
        ("/_emulator/ledger", "GET") => json_response(200, &shared.service.ledger(), request_id),
        ("/_emulator/duplicates", "GET") => {
            json_response(200, &shared.service.rejected_duplicates(), request_id)
        }
        ("/_emulator/requests", "GET") => json_response(200, &shared.requests(), request_id),
        ("/_emulator/reset", "POST") => match shared.reset() {
            Ok(()) => json_response(200, &serde_json::json!({ "reset": true }), request_id),
            Err(e) => control_error(500, "InternalError", &e.to_string(), request_id),
        },
        ("/_emulator/state", "GET") => {
            json_response(200, &shared.service.catalog().config, request_id)
        }
        ("/_emulator/state", "PUT") => match serde_json::from_slice::<EmulatorConfig>(&body) {
            Ok(cfg) => {
                shared.service.set_config(cfg);
                json_response(200, &shared.service.catalog().config, request_id)
            }
            Err(e) => bad_json(e),
        },
        ("/_emulator/faults", "GET") => json_response(200, &shared.faults(), request_id),
        ("/_emulator/faults", "POST") => {
            let faults = match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(serde_json::Value::Array(items)) => items
                    .into_iter()
                    .map(serde_json::from_value::<Fault>)
                    .collect::<Result<Vec<_>, _>>(),
                Ok(v) => serde_json::from_value::<Fault>(v).map(|f| vec![f]),
                Err(e) => Err(e),
            };
            match faults {
                Ok(list) => {
                    let n = list.len();
                    for f in list {
                        shared.push_fault(f);
                    }
                    json_response(
                        200,
                        &serde_json::json!({ "queued": n, "pending": shared.faults().len() }),
                        request_id,
                    )
                }
                Err(e) => bad_json(e),
            }
        }
        (
            "/_emulator/health"
            | "/_emulator/ledger"
            | "/_emulator/duplicates"
            | "/_emulator/requests"
            | "/_emulator/reset"
            | "/_emulator/state"
            | "/_emulator/faults",
            _,
        ) => control_error(
            405,
            "MethodNotAllowed",
            &format!("{m} is not allowed on {path}"),
            request_id,
        ),
        _ => control_error(
            404,
            "NotFound",
            &format!("no control endpoint {path}"),
            request_id,
        ),
    }
}
