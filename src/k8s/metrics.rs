//! Metric analysis on Kubernetes targets: the analysis step's provider is asked. A Prometheus
//! provider is an instant query (`GET /api/v1/query`) of its HTTP API, the query being a
//! template over the measured track; its first sample is the measurement, an empty result
//! means no data yet.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::Value;

use crate::cluster::MetricQuery;
use crate::rollout::analysis::PrometheusProvider;

/// How long one query may take.
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

/// Asks the Prometheus server for the query's current value.
pub(crate) async fn prometheus(
    provider: &PrometheusProvider,
    query: &MetricQuery,
) -> Result<Option<f64>, String> {
    let promql = render_query(provider, query)?;
    let url = format!(
        "{}/api/v1/query?query={}",
        provider.address.trim_end_matches('/'),
        percent_encode(&promql)
    );
    let uri: http::Uri = url.parse().map_err(|e| format!("address: {e}"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let request = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
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
    let answer = tokio::time::timeout(QUERY_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {}s", QUERY_TIMEOUT.as_secs()))??;
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
}
