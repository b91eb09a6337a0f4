// SPDX-License-Identifier: Apache-2.0
// One HTTP client and one TLS stack for everything the crate sends.

//! The crate's single HTTP stack: reqwest on rustls with the *ring* provider.
//!
//! Two things share it: the client's own calls, and the calls the default credentials chain
//! makes (IMDSv2, ECS, STS for web identity and assume-role). aws-config would otherwise
//! bring its own hyper client on a second rustls build backed by aws-lc — a second HTTP
//! client, the largest unit of a cold build, and about 3 MB of every face's artifact.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::Error;

/// Makes *ring* rustls' process default provider, unless the process already chose one
/// (then that one is used: every provider rustls ships is a complete one).
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with the crate's TLS set up and redirects off: a 3xx is the
/// answer, never a reason to send the signed request (and its session token) elsewhere.
///
/// reqwest's own retries are off too. They only ever resend an HTTP/2 stream the server
/// refused, and this client speaks HTTP/1.1 and retries by its own rules; but with any
/// retry allowed, reqwest copied every request (its headers, URI and extensions) in case one
/// was needed.
pub(crate) fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never().max_retries_per_request(0))
}

/// What every HTTP client of a [`crate::Config`] shares: its proxies and trusted roots.
///
/// The proxies are the resolved ones (code, else `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`
/// in either case): reqwest's own reading of the environment is turned off, so a value set in
/// code or an injected environment is the only one used, and the credential chain's calls
/// (IMDS, ECS, STS) honour the same `NO_PROXY`.
#[derive(Clone, Default)]
pub(crate) struct HttpSettings {
    pub(crate) http_proxy: Option<String>,
    pub(crate) https_proxy: Option<String>,
    pub(crate) no_proxy: Option<String>,
    /// The roots servers' certificates are checked against.
    pub(crate) roots: TrustRoots,
}

impl HttpSettings {
    /// `builder` with these proxies and roots.
    pub(crate) fn apply(&self, mut b: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        b = b.no_proxy();
        let no_proxy = || {
            self.no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string)
        };
        // Proxy URLs were checked when the configuration was built.
        if let Some(p) = self
            .https_proxy
            .as_deref()
            .and_then(|u| reqwest::Proxy::https(u).ok())
        {
            b = b.proxy(p.no_proxy(no_proxy()));
        }
        if let Some(p) = self
            .http_proxy
            .as_deref()
            .and_then(|u| reqwest::Proxy::http(u).ok())
        {
            b = b.proxy(p.no_proxy(no_proxy()));
        }
        b.tls_backend_preconfigured(self.roots.client_config())
    }
}

/// The roots a client trusts, loaded by the first TLS handshake that needs them.
///
/// Loading the platform's roots reads and parses every certificate under `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` (a few hundred on a Debian host, 3 ms of a Node process's first call); a
/// client that only ever talks plain HTTP (the emulator, a sidecar) never needs them, and a
/// host without any (a scratch container) could not even build a client. So the verifier is
/// built at the first handshake and kept by every client of one configuration, as reqwest
/// kept the one it built with each client. A handshake that finds no usable roots fails with
/// the reason; the next one looks again. A caller's own bundles were checked when the
/// configuration was built ([`read_pem_bundle`]).
#[derive(Clone, Default)]
pub(crate) struct TrustRoots(Arc<LazyVerifier>);

#[derive(Debug, Default)]
struct LazyVerifier {
    /// A CA bundle that replaces the platform's roots (`AWS_CA_BUNDLE`, as botocore does).
    only: Option<Arc<rustls::RootCertStore>>,
    /// Certificates added to the platform's roots (Node's `NODE_EXTRA_CA_CERTS`).
    extra: Vec<CertificateDer<'static>>,
    built: OnceLock<Arc<dyn ServerCertVerifier>>,
}

impl TrustRoots {
    /// `only` replaces the platform's roots; `extra` is added to them.
    pub(crate) fn new(
        only: Option<rustls::RootCertStore>,
        extra: Vec<CertificateDer<'static>>,
    ) -> Self {
        TrustRoots(Arc::new(LazyVerifier {
            only: only.map(Arc::new),
            extra,
            built: OnceLock::new(),
        }))
    }

    /// A TLS configuration as reqwest would build it for this crate (TLS 1.2 and 1.3 on the
    /// process's provider, HTTP/1.1 by ALPN, SNI on), checking certificates with these roots.
    fn client_config(&self) -> rustls::ClientConfig {
        let verifier: Arc<dyn ServerCertVerifier> = self.0.clone();
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .expect("the provider supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

/// The process's crypto provider: *ring* unless the process chose another first.
fn provider() -> Arc<CryptoProvider> {
    install_crypto_provider();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

impl LazyVerifier {
    /// The verifier, built now if no handshake built it yet. Only a built one is kept: the
    /// roots are built outside the cell, so a fork meanwhile leaves no half-made cell behind.
    fn verifier(&self) -> Result<&Arc<dyn ServerCertVerifier>, rustls::Error> {
        if let Some(v) = self.built.get() {
            return Ok(v);
        }
        let v = self.build()?;
        Ok(self.built.get_or_init(|| v))
    }

    fn build(&self) -> Result<Arc<dyn ServerCertVerifier>, rustls::Error> {
        let Some(only) = &self.only else {
            return platform(self.extra.clone());
        };
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::clone(only), provider())
            .build()
            .map(|v| v as Arc<dyn ServerCertVerifier>)
            .map_err(|e| rustls::Error::General(format!("the CA bundle cannot be used: {e}")))
    }
}

/// A verifier of the platform's roots plus `extra`.
fn platform(
    extra: Vec<CertificateDer<'static>>,
) -> Result<Arc<dyn ServerCertVerifier>, rustls::Error> {
    let v = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider())
        .map_err(|e| rustls::Error::General(format!("the platform's CA certificates: {e}")))?;
    Ok(Arc::new(v))
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    // The signatures are checked with the provider's algorithms, as every verifier rustls
    // and the platform verifier build does: no roots are needed for them.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificates of a PEM bundle file and the roots they make, or why it cannot be used.
pub(crate) fn read_pem_bundle(
    path: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, rustls::RootCertStore), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate bundle: {e}", path.display()))?;
    // Each must serve as a root, as reqwest checked when it built a client with them.
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        store.add(cert.clone()).map_err(|e| {
            format!(
                "certificate {} of {} cannot be a trusted root: {e}",
                i + 1,
                path.display()
            )
        })?;
    }
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok((certs, store))
}

/// The largest response body read: the service's answers are a few KiB at most.
pub(crate) const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Why a response body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It is longer than [`MAX_RESPONSE_BYTES`].
    TooLarge,
    /// The transport failed while reading it (the connection ended early, a timeout).
    Read(reqwest::Error),
}

/// Reads a response body whole, refusing one longer than [`MAX_RESPONSE_BYTES`] before
/// buffering past that size.
pub(crate) async fn read_body(mut resp: reqwest::Response) -> Result<bytes::Bytes, BodyError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut first: Option<bytes::Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        let have = if rest.is_empty() {
            first.as_ref().map_or(0, |b| b.len())
        } else {
            rest.len()
        };
        if have + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(BodyError::TooLarge);
        }
        match &first {
            // Most bodies arrive in one chunk: keep it without copying.
            None => first = Some(chunk),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        rest.into()
    })
}

/// A reqwest client with these timeouts, proxies and roots.
pub(crate) fn http_client(
    connect: Duration,
    read: Duration,
    settings: &HttpSettings,
) -> Result<reqwest::Client, Error> {
    settings
        .apply(http_client_builder())
        .connect_timeout(connect)
        .read_timeout(read)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| {
            Error::invalid_config(format!("cannot build the HTTP client: {e}")).with_source(e)
        })
}

/// aws-config's HTTP client, on reqwest.
#[cfg(feature = "default-chain")]
pub(crate) mod smithy {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};
    use std::time::Duration;

    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    /// The chain's timeouts when aws-config sets none.
    const DEFAULT_CONNECT: Duration = Duration::from_millis(3100);

    /// One reqwest client per connect timeout aws-config asks for (IMDS asks 1 s, STS 3.1 s):
    /// reqwest sets that timeout per client, the read timeout per request.
    ///
    /// The container credentials endpoint (ECS, EKS Pod Identity) is reached directly, never
    /// through a proxy, as botocore and SDK v3 reach it: `HTTP_PROXY` without that endpoint
    /// in `NO_PROXY` would hand the proxy the bearer token, and the role's credentials back
    /// in plain HTTP (a task's link-local endpoint is not the proxy's to reach anyway). So is
    /// any link-local address, IMDS's among them ([`host_local`]), as SDK v3 and the AWS SDK
    /// for Rust reach it: botocore sends IMDS through `HTTP_PROXY`, where the token request
    /// and the node role's credentials cross the proxy in plain HTTP, or the proxy's own host
    /// answers with its role. STS, SSO and an IMDS endpoint named elsewhere use the proxies.
    #[derive(Default)]
    pub(crate) struct ReqwestHttpClient {
        clients: Mutex<HashMap<(Duration, bool), reqwest::Client>>,
        settings: super::HttpSettings,
        /// The container endpoints' `(host, port)`, from the variables aws-config reads.
        direct: Vec<(String, u16)>,
    }

    /// The container credentials endpoints the chain may call: `169.254.170.2` for
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, and the host of
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    fn container_endpoints() -> Vec<(String, u16)> {
        let mut out = Vec::new();
        if std::env::var_os("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some_and(|v| !v.is_empty())
        {
            out.push(("169.254.170.2".to_owned(), 80));
        }
        if let Some(u) = std::env::var("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .ok()
            .and_then(|v| reqwest::Url::parse(&v).ok())
        {
            if let (Some(h), Some(p)) = (u.host_str(), u.port_or_known_default()) {
                out.push((h.to_owned(), p));
            }
        }
        out
    }

    /// Whether `u` is an address of this host's own endpoints, which no proxy can reach for
    /// it: link-local (IPv4 `169.254.0.0/16`: IMDS, the ECS and EKS Pod Identity endpoints;
    /// IPv6 `fe80::/10`) or IMDS's IPv6 address `fd00:ec2::254`.
    fn host_local(u: &reqwest::Url) -> bool {
        let host = u.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => a.is_link_local(),
            Ok(std::net::IpAddr::V6(a)) => {
                a.segments()[0] & 0xffc0 == 0xfe80
                    || a == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            }
            Err(_) => false,
        }
    }

    impl std::fmt::Debug for ReqwestHttpClient {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ReqwestHttpClient").finish_non_exhaustive()
        }
    }

    impl ReqwestHttpClient {
        /// A client whose connections use these proxies and roots.
        pub(crate) fn new(settings: super::HttpSettings) -> Self {
            ReqwestHttpClient {
                clients: Mutex::default(),
                settings,
                direct: container_endpoints(),
            }
        }
    }

    impl ReqwestHttpClient {
        /// The client for `connect`; `direct`: without the proxies.
        fn client(
            &self,
            connect: Duration,
            direct: bool,
        ) -> Result<reqwest::Client, ConnectorError> {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = clients.get(&(connect, direct)) {
                return Ok(c.clone());
            }
            let settings = if direct {
                super::HttpSettings {
                    http_proxy: None,
                    https_proxy: None,
                    no_proxy: None,
                    ..self.settings.clone()
                }
            } else {
                self.settings.clone()
            };
            // No pooling: a connection is served by a task on the runtime that opened it,
            // and a refresh may run on a calling thread's own runtime (runtime::block_on),
            // which stops when that call returns. Refreshes are rare; a new connection each
            // time costs nothing that matters.
            let c = settings
                .apply(super::http_client_builder())
                .connect_timeout(connect)
                .pool_max_idle_per_host(0)
                .build()
                .map_err(|e| ConnectorError::user(e.into()))?;
            clients.insert((connect, direct), c.clone());
            Ok(c)
        }
    }

    impl HttpClient for ReqwestHttpClient {
        fn http_connector(
            &self,
            settings: &HttpConnectorSettings,
            _components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            let connect = settings.connect_timeout().unwrap_or(DEFAULT_CONNECT);
            SharedHttpConnector::new(Connector {
                client: self.client(connect, false),
                direct_client: self.client(connect, true),
                direct: self.direct.clone(),
                read_timeout: settings.read_timeout(),
            })
        }
    }

    #[derive(Debug)]
    struct Connector {
        client: Result<reqwest::Client, ConnectorError>,
        /// Without proxies: for `direct` and [`host_local`] addresses (see
        /// [`ReqwestHttpClient`]).
        direct_client: Result<reqwest::Client, ConnectorError>,
        direct: Vec<(String, u16)>,
        read_timeout: Option<Duration>,
    }

    impl HttpConnector for Connector {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let direct = reqwest::Url::parse(request.uri()).is_ok_and(|u| {
                host_local(&u)
                    || self.direct.iter().any(|(h, p)| {
                        u.host_str() == Some(h.as_str()) && u.port_or_known_default() == Some(*p)
                    })
            });
            let chosen = if direct {
                &self.direct_client
            } else {
                &self.client
            };
            let client = match chosen {
                Ok(c) => c.clone(),
                Err(e) => {
                    let e = ConnectorError::user(e.to_string().into());
                    return HttpConnectorFuture::ready(Err(e));
                }
            };
            let request = match convert(&client, request, self.read_timeout) {
                Ok(r) => r,
                Err(e) => return HttpConnectorFuture::ready(Err(e)),
            };
            HttpConnectorFuture::new(async move {
                let response = client.execute(request).await.map_err(classify)?;
                let status = StatusCode::try_from(response.status().as_u16())
                    .map_err(|e| ConnectorError::other(e.into(), None))?;
                let headers = response.headers().clone();
                let body = super::read_body(response).await.map_err(|e| match e {
                    super::BodyError::Read(e) => classify(e),
                    super::BodyError::TooLarge => ConnectorError::other(
                        format!(
                            "the response body is larger than {} bytes",
                            super::MAX_RESPONSE_BYTES
                        )
                        .into(),
                        None,
                    ),
                })?;
                // Streaming, not in memory: aws-smithy's orchestrator prints the response at
                // trace, and an in-memory body whole (the chain's answers are credentials);
                // a streaming one prints as `BoxBody`.
                let body = SdkBody::from_body_1_x(http_body_util::Full::new(body));
                let mut out = HttpResponse::new(status, body);
                for (name, value) in &headers {
                    if let Ok(v) = value.to_str() {
                        out.headers_mut()
                            .append(name.as_str().to_owned(), v.to_owned());
                    }
                }
                Ok(out)
            })
        }
    }

    fn convert(
        client: &reqwest::Client,
        request: HttpRequest,
        read_timeout: Option<Duration>,
    ) -> Result<reqwest::Request, ConnectorError> {
        let user = |m: String| ConnectorError::user(m.into());
        let method = reqwest::Method::from_bytes(request.method().as_bytes())
            .map_err(|e| user(format!("bad method: {e}")))?;
        let body = request
            .body()
            .bytes()
            .ok_or_else(|| user("streaming request bodies are not supported".into()))?
            .to_vec();
        let mut builder = client.request(method, request.uri());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        if let Some(t) = read_timeout {
            builder = builder.timeout(t);
        }
        builder
            .body(body)
            .build()
            .map_err(|e| user(format!("cannot build the request: {e}")))
    }

    fn classify(e: reqwest::Error) -> ConnectorError {
        if e.is_timeout() {
            ConnectorError::timeout(e.into())
        } else if e.is_connect() {
            ConnectorError::io(e.into()).never_connected()
        } else if e.is_request() || e.is_body() {
            ConnectorError::io(e.into())
        } else {
            ConnectorError::other(e.into(), None)
        }
    }

    #[cfg(test)]
    mod tests {
        /// IMDS at its own addresses (the chain's default endpoint, IPv4 and IPv6) and the
        /// container endpoints are this host's, which no proxy reaches for it: through
        /// `HTTP_PROXY` the token request and the node role's credentials crossed the proxy in
        /// plain HTTP, or the proxy's own host answered with its role (found by a review of
        /// container deployments). A named endpoint elsewhere keeps the proxies.
        #[test]
        fn a_hosts_own_endpoints_never_go_through_a_proxy() {
            for (url, direct) in [
                ("http://169.254.169.254/latest/api/token", true),
                ("http://[fd00:ec2::254]/latest/api/token", true),
                ("http://169.254.170.2/v2/credentials/x", true),
                ("http://169.254.170.23/v1/credentials", true),
                ("http://[fe80::1]:8080/", true),
                ("http://127.0.0.1:9/latest/api/token", false),
                ("http://imds.example.test/", false),
                ("https://sts.us-east-1.amazonaws.com/", false),
                ("http://[fd00:ec2::253]/", false),
                ("http://169.255.0.1/", false),
            ] {
                let u = reqwest::Url::parse(url).unwrap();
                assert_eq!(super::host_local(&u), direct, "{url}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use metering_emulator::{Emulator, EmulatorConfig, Fault};

    /// A one-shot server on 127.0.0.1 answering with a chunked body of `chunks` × `size` bytes.
    fn chunked_server(chunks: usize, size: usize) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for i in 0..chunks {
                let byte = b'a' + (i % 26) as u8;
                let _ = s.write_all(format!("{size:x}\r\n").as_bytes());
                let _ = s.write_all(&vec![byte; size]);
                let _ = s.write_all(b"\r\n");
            }
            let _ = s.write_all(b"0\r\n\r\n");
        });
        format!("http://{addr}/")
    }

    /// Without a Content-Length the cap is kept while reading, and chunks are joined in order.
    #[tokio::test]
    async fn a_chunked_body_is_joined_and_capped() {
        let c = super::http_client_builder().build().unwrap();
        let resp = c.get(chunked_server(3, 10)).send().await.unwrap();
        let body = super::read_body(resp).await.unwrap();
        assert_eq!(
            &body[..],
            [&[b'a'; 10][..], &[b'b'; 10], &[b'c'; 10]].concat()
        );
        let resp = c.get(chunked_server(80, 64 << 10)).send().await.unwrap();
        assert!(matches!(
            super::read_body(resp).await,
            Err(super::BodyError::TooLarge)
        ));
    }

    /// The credential chain's client comes from the same builder: it must not follow either.
    #[tokio::test]
    async fn the_builder_follows_no_redirect() {
        let emu = Emulator::start(EmulatorConfig::default()).unwrap();
        let elsewhere = Emulator::start(EmulatorConfig::default()).unwrap();
        emu.push_fault(Fault::Redirect {
            status: 307,
            location: format!("{}/", elsewhere.endpoint()),
        });
        let c = super::http_client_builder().build().unwrap();
        let resp = c
            .post(format!("{}/", emu.endpoint()))
            .header("x-amz-security-token", "token")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 307);
        assert!(elsewhere.requests().is_empty());
    }
}
