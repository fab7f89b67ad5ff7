//! Metric analysis on Kubernetes targets: the analysis step's provider is asked. A Prometheus
//! provider is an instant query (`GET /api/v1/query`) of its HTTP API over http or https (the
//! system's roots, an extra CA file, or no verification when asked), the query being a
//! template over the measured track; its first sample is the measurement, an empty result
//! means no data yet.
//!
//! Invariant: header values (credentials) are read when the query is made and never appear
//! in an error.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::Value;
use tokio_rustls::rustls;

use crate::cluster::MetricQuery;
use crate::rollout::analysis::PrometheusProvider;

/// How long one query may take unless the provider says otherwise.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// The query with the track's values put in.
pub(crate) fn render_query(
    provider: &PrometheusProvider,
    query: &MetricQuery,
) -> Result<String, String> {
    let mut templates = handlebars::Handlebars::new();
    templates.set_strict_mode(true);
    templates.register_escape_fn(handlebars::no_escape);
    let values = serde_json::json!({
        "namespace": query.namespace,
        "selector": query.selector,
        "track": query.track,
        "app": query.app,
        "window": format!("{}s", query.window.as_secs().max(1)),
    });
    templates
        .render_template(&provider.query, &values)
        .map_err(|e| format!("query template: {e}"))
}

/// `%XX` for everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The measurement in a Prometheus answer: the first sample of a vector, or a scalar;
/// `None` for an empty vector or NaN.
pub(crate) fn sample(answer: &Value) -> Result<Option<f64>, String> {
    if answer.get("status").and_then(Value::as_str) != Some("success") {
        let error = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no status \"success\" in the answer");
        return Err(format!("query failed: {error}"));
    }
    let data = answer.get("data").cloned().unwrap_or(Value::Null);
    let pair = match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => match data.pointer("/result/0/value") {
            Some(pair) => pair.clone(),
            None => return Ok(None),
        },
        Some("scalar") => data.get("result").cloned().unwrap_or(Value::Null),
        Some(other) => {
            return Err(format!(
                "the query returned a {other}; it must return one sample (a vector or a scalar)"
            ));
        }
        None => return Err("the answer has no data.resultType".into()),
    };
    let text = pair
        .get(1)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the sample {pair} has no value"))?;
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(Some(value)),
        Ok(_) => Ok(None),
        Err(_) => Err(format!("the sample value {text:?} is not a number")),
    }
}

/// A header of the queries, its value read.
pub(crate) type Header = (http::HeaderName, http::HeaderValue);

/// Reads the key of a Secret in the measured namespace: `(name, key)`, `Ok(None)` when the
/// Secret or the key is missing.
pub(crate) type SecretReader<'a> = &'a dyn Fn(&str, &str) -> Result<Option<Vec<u8>>, String>;

/// The provider's headers with their values: literal, from the environment, or from a Secret
/// (`secret(name, key)` reads the key of a Secret in the measured namespace; `Ok(None)` when
/// the Secret or the key is missing).
pub(crate) fn headers(
    provider: &PrometheusProvider,
    secret: SecretReader<'_>,
) -> Result<Vec<Header>, String> {
    let mut out = Vec::new();
    for header in &provider.headers {
        let name = http::HeaderName::from_bytes(header.key.as_bytes())
            .map_err(|_| format!("header {:?} is not a header name", header.key))?;
        let (value, from) = match (&header.value, &header.value_from) {
            (Some(value), _) => (value.as_bytes().to_vec(), "its value".to_string()),
            (None, Some(source)) => {
                let (read, from) = match (&source.env, &source.secret_key_ref) {
                    (Some(var), _) => (
                        std::env::var_os(var).map(|v| v.into_encoded_bytes()),
                        format!("environment variable {var}"),
                    ),
                    (None, Some(key)) => (
                        secret(&key.name, &key.key)?,
                        format!("key {:?} of Secret {:?}", key.key, key.name),
                    ),
                    (None, None) => (None, "nothing".to_string()),
                };
                let Some(read) = read else {
                    return Err(format!("header {}: {from} is not set", header.key));
                };
                let mut value = source.prefix.clone().unwrap_or_default().into_bytes();
                value.extend(read.trim_ascii());
                (value, from)
            }
            (None, None) => return Err(format!("header {} has no value", header.key)),
        };
        let mut value = http::HeaderValue::from_bytes(&value)
            .map_err(|_| format!("header {}: {from} is not a valid header value", header.key))?;
        value.set_sensitive(true);
        out.push((name, value));
    }
    Ok(out)
}

/// The system's trusted roots, read once per process.
fn system_roots() -> &'static [rustls::pki_types::CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// ring rather than aws-lc-rs, as the rest of the crate (no C toolchain beyond ring's).
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS client configuration of an https:// provider.
fn tls_config(provider: &PrometheusProvider) -> Result<rustls::ClientConfig, String> {
    let crypto = ring_provider();
    let builder = rustls::ClientConfig::builder_with_provider(crypto.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    if provider.insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(crypto)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(file) = &provider.ca_file {
        use rustls::pki_types::pem::PemObject as _;
        let pem = std::fs::read(file).map_err(|e| format!("caFile {file}: {e}"))?;
        let mut added = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("caFile {file}: {e}"))?;
            roots.add(cert).map_err(|e| format!("caFile {file}: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("caFile {file}: no PEM certificate in it"));
        }
    }
    if roots.is_empty() {
        return Err(
            "no CA certificate to trust: the system has none; name one with caFile".to_string(),
        );
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `insecure: true`: any certificate is accepted; signatures are still checked, so the
/// handshake itself is sound.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Asks the Prometheus server for the query's current value, sending `headers`.
pub(crate) async fn prometheus(
    provider: &PrometheusProvider,
    query: &MetricQuery,
    headers: Vec<Header>,
) -> Result<Option<f64>, String> {
    let promql = render_query(provider, query)?;
    let url = format!(
        "{}/api/v1/query?query={}",
        provider.address.trim_end_matches('/'),
        percent_encode(&promql)
    );
    let uri: http::Uri = url.parse().map_err(|e| format!("address: {e}"))?;
    let connector = if uri.scheme_str() == Some("https") {
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(provider)?)
            .https_only()
            .enable_http1()
            .build()
    } else {
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(
                rustls::ClientConfig::builder_with_provider(ring_provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS: {e}"))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
            .https_or_http()
            .enable_http1()
            .build()
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(connector);
    let mut request = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    request.headers_mut().extend(headers);
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            let mut words = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                words.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            words
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if body.len() > MAX_ANSWER {
            return Err(format!("the answer is larger than {MAX_ANSWER} bytes"));
        }
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("HTTP {status}: the answer is not JSON"))?;
        Ok::<_, String>(answer)
    };
    let limit = provider
        .timeout
        .map(Duration::from_secs)
        .unwrap_or(QUERY_TIMEOUT);
    let answer = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("no answer within {}s", limit.as_secs()))??;
    sample(&answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query() -> MetricQuery {
        MetricQuery {
            namespace: "shop".into(),
            selector: "app=web,reconcile.dev/track=canary".into(),
            metric: "success-rate".into(),
            window: Duration::from_secs(10),
            app: "web".into(),
            track: "canary".into(),
            provider: None,
        }
    }

    #[test]
    fn the_query_template_gets_the_track() {
        let provider = PrometheusProvider {
            address: "http://p:9090".into(),
            query: "rate(ok{namespace=\"{{namespace}}\",track=\"{{track}}\"}[{{window}}])".into(),
            timeout: None,
            insecure: false,
            ca_file: None,
            headers: Vec::new(),
        };
        assert_eq!(
            render_query(&provider, &query()).as_deref(),
            Ok("rate(ok{namespace=\"shop\",track=\"canary\"}[10s])")
        );
        let unknown = PrometheusProvider {
            query: "{{nope}}".into(),
            ..provider
        };
        assert!(render_query(&unknown, &query()).is_err());
    }

    #[test]
    fn samples_are_read_from_vectors_and_scalars() {
        let vector = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1.0, "0.97"]}]}});
        assert_eq!(sample(&vector), Ok(Some(0.97)));
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert_eq!(sample(&empty), Ok(None));
        let scalar =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "NaN"]}});
        assert_eq!(sample(&scalar), Ok(None));
        let failed = json!({"status": "error", "error": "parse error"});
        assert!(sample(&failed).is_err_and(|e| e.contains("parse error")));
    }

    #[test]
    fn query_text_is_percent_encoded() {
        assert_eq!(
            percent_encode("a{b=\"c\"} / 2"),
            "a%7Bb%3D%22c%22%7D%20%2F%202"
        );
    }

    /// An https Prometheus on 127.0.0.1 with a certificate of its own CA; answers every query
    /// with 0.97 and keeps the `Authorization` headers it was sent. Returns its address and
    /// the CA's PEM.
    async fn https_prometheus(seen: Arc<std::sync::Mutex<Vec<String>>>) -> (String, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let credentials = crate::api::tls::credentials(&address).expect("certificates");
        let acceptor = tokio_rustls::TlsAcceptor::from(credentials.server.clone());
        tokio::spawn(async move {
            for _ in 0..10 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let Ok(tls) = acceptor.accept(stream).await else {
                    continue;
                };
                let seen = seen.clone();
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let auth = request
                            .headers()
                            .get(http::header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        if let Ok(mut seen) = seen.lock() {
                            seen.push(auth);
                        }
                        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.97"]}]}}"#;
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(Bytes::from(body)),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            }
        });
        (format!("https://{address}"), credentials.ca_pem)
    }

    fn provider(address: &str) -> PrometheusProvider {
        PrometheusProvider {
            address: address.into(),
            query: "up".into(),
            timeout: Some(5),
            insecure: false,
            ca_file: None,
            headers: vec![crate::rollout::analysis::PrometheusHeader {
                key: "Authorization".into(),
                value: None,
                value_from: Some(crate::rollout::analysis::HeaderSource {
                    env: None,
                    secret_key_ref: Some(crate::rollout::analysis::SecretKeyRef {
                        name: "prometheus".into(),
                        key: "token".into(),
                    }),
                    prefix: Some("Bearer ".into()),
                }),
            }],
        }
    }

    #[tokio::test]
    async fn https_queries_trust_the_system_roots_a_ca_file_or_nothing_when_insecure() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (address, ca_pem) = https_prometheus(seen.clone()).await;
        let secret = |name: &str, key: &str| -> Result<Option<Vec<u8>>, String> {
            Ok((name == "prometheus" && key == "token").then(|| b"s3cret\n".to_vec()))
        };

        // The server's CA is not among the system's roots: refused, the token not shown.
        let plain = provider(&address);
        let sent = headers(&plain, &secret).expect("headers");
        let refused = prometheus(&plain, &query(), sent)
            .await
            .expect_err("untrusted");
        assert!(refused.contains("certificate"), "{refused}");
        assert!(!refused.contains("s3cret"), "{refused}");

        // Trusted through caFile: the measurement, and the header from the Secret.
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca_pem).expect("write");
        let trusted = PrometheusProvider {
            ca_file: Some(ca_file.display().to_string()),
            ..provider(&address)
        };
        let sent = headers(&trusted, &secret).expect("headers");
        assert_eq!(prometheus(&trusted, &query(), sent).await, Ok(Some(0.97)));
        assert!(
            seen.lock()
                .expect("seen")
                .iter()
                .any(|a| a == "Bearer s3cret"),
            "the Secret's value, trimmed, after the prefix"
        );

        // insecure: true skips verification.
        let insecure = PrometheusProvider {
            insecure: true,
            headers: Vec::new(),
            ..provider(&address)
        };
        assert_eq!(
            prometheus(&insecure, &query(), Vec::new()).await,
            Ok(Some(0.97))
        );

        // A CA file that holds no certificate is named.
        std::fs::write(&ca_file, "not a certificate").expect("write");
        let bad = prometheus(&trusted, &query(), Vec::new())
            .await
            .expect_err("bad CA");
        assert!(bad.contains("no PEM certificate"), "{bad}");
    }

    #[test]
    fn missing_header_values_name_their_source_never_a_value() {
        let mut from_env = provider("https://p");
        if let Some(source) = from_env.headers[0].value_from.as_mut() {
            source.secret_key_ref = None;
            source.env = Some("RECONCILE_TEST_UNSET_PROMETHEUS_TOKEN".into());
        }
        let none = |_: &str, _: &str| -> Result<Option<Vec<u8>>, String> { Ok(None) };
        assert_eq!(
            headers(&from_env, &none).err().as_deref(),
            Some(
                "header Authorization: environment variable RECONCILE_TEST_UNSET_PROMETHEUS_TOKEN is not set"
            )
        );
        assert_eq!(
            headers(&provider("https://p"), &none).err().as_deref(),
            Some("header Authorization: key \"token\" of Secret \"prometheus\" is not set")
        );
        let newline =
            |_: &str, _: &str| -> Result<Option<Vec<u8>>, String> { Ok(Some(b"zz\nqq".to_vec())) };
        let err = headers(&provider("https://p"), &newline)
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("not a valid header value") && !err.contains("zz"),
            "{err}"
        );
    }
}
