//! Logging and tracing set-up: `tracing` to stderr, as JSON lines (default) or human-readable
//! text, filtered by `log.level` (`LOG_LEVEL`, or `RUST_LOG` when set). Colours only on a
//! terminal: logs that go to journald, PM2's files or a pipe are plain text.
//!
//! A panic is logged as an `error` event like any other line (message, location and, when
//! `RUST_BACKTRACE` asks for one, the backtrace), not as the standard library's multi-line
//! text: with JSON logs every line on stderr stays one JSON object, a caught panic included.
//!
//! JSON lines carry the fields of the innermost span (`span`) and of every enclosing span
//! (`spans`): a line logged anywhere inside a job names the job (`queue`, `job_id`, `attempt`,
//! `user_id`), one logged inside a request names the request id.
//!
//! With the `otlp` feature and `log.otlp_endpoint` set, spans are also exported to an
//! OpenTelemetry collector over OTLP/HTTP, and [`current_traceparent`] / [`set_parent`] carry a
//! trace from the request that enqueues a job to the job's attempts (through its payload).

use serde::{Deserialize, Serialize};
use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::infra::settings::{Invalid, http_url};

/// Installs the global subscriber for `service` (the binary's name, OpenTelemetry's
/// `service.name`). Call once, first thing in `main`, after configuration loaded.
pub fn init(settings: &LogSettings, service: &str) {
    // Before any HTTP client (the OTLP exporter's included) is built.
    crate::infra::tls::install_crypto_provider();
    let lines = log_lines(settings, std::io::stderr, std::io::stderr().is_terminal());
    // The log level filters the log lines only: exported spans have their own level (info), so
    // quieter logs do not lose traces.
    let registry = tracing_subscriber::registry().with(lines);
    #[cfg(feature = "otlp")]
    let registry = registry.with(otlp::layer(settings, service));
    #[cfg(not(feature = "otlp"))]
    let _ = service;
    registry.init();
    // Replaces the standard library's hook, which writes several lines of plain text.
    std::panic::set_hook(Box::new(tracing_panic::panic_hook));
    #[cfg(not(feature = "otlp"))]
    if !settings.otlp_endpoint.is_empty() {
        tracing::warn!(
            "log.otlp_endpoint is set but this build has no OpenTelemetry export (the otlp feature); spans are not exported"
        );
    }
}

/// The log lines: `settings.format` to `writer`, filtered by `settings.level`, coloured when
/// `ansi`.
fn log_lines<S, W>(settings: &LogSettings, writer: W, ansi: bool) -> impl Layer<S> + use<S, W>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    // The filter was validated with the configuration, so this cannot fail for a loaded Settings.
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let fmt = match settings.format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
        LogFormat::Pretty => fmt.boxed(),
    };
    fmt.with_filter(filter)
}

#[cfg(feature = "otlp")]
pub use otlp::{current_traceparent, set_parent, shutdown};
#[cfg(not(feature = "otlp"))]
pub use without_otlp::{current_traceparent, set_parent, shutdown};

/// What a build without OpenTelemetry does: nothing.
#[cfg(not(feature = "otlp"))]
mod without_otlp {
    /// Sends the spans not yet exported (call before the process exits).
    pub fn shutdown() {}

    /// The current span's trace context as a W3C `traceparent`, when spans are exported.
    pub fn current_traceparent() -> Option<String> {
        None
    }

    /// Makes `span` a child of the trace context `traceparent`, when spans are exported.
    pub fn set_parent(_span: &tracing::Span, _traceparent: &str) {}
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::registry::LookupSpan;

    use crate::infra::telemetry::LogSettings;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The OpenTelemetry layer, when an endpoint is configured (spans batched, exported over
    /// OTLP/HTTP protobuf to `<endpoint>/v1/traces`).
    pub(super) fn layer<S>(settings: &LogSettings, service: &str) -> Option<Box<dyn Layer<S> + Send + Sync>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        if settings.otlp_endpoint.is_empty() {
            return None;
        }
        let endpoint = format!("{}/v1/traces", settings.otlp_endpoint.trim_end_matches('/'));
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
        {
            Ok(exporter) => exporter,
            Err(error) => {
                eprintln!("{service}: OpenTelemetry export disabled: {error}");
                return None;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
            .build();
        let tracer = provider.tracer("sellersync");
        let _ = PROVIDER.set(provider);
        let spans = tracing_subscriber::filter::LevelFilter::INFO;
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(spans)
                .boxed(),
        )
    }

    /// Sends the spans not yet exported (call before the process exits).
    pub fn shutdown() {
        if let Some(provider) = PROVIDER.get()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("OpenTelemetry: spans not all exported: {error}");
        }
    }

    /// The current span's trace context as a W3C `traceparent`, when spans are exported.
    pub fn current_traceparent() -> Option<String> {
        PROVIDER.get()?;
        let context = tracing::Span::current().context();
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        carrier.remove("traceparent")
    }

    /// Makes `span` a child of the trace context `traceparent`, when spans are exported.
    pub fn set_parent(span: &tracing::Span, traceparent: &str) {
        if PROVIDER.get().is_none() {
            return;
        }
        let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(parent);
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
    /// OpenTelemetry collector's OTLP/HTTP base URL (spans go to `<it>/v1/traces`); empty: no
    /// export. Needs a build with the `otlp` feature.
    pub otlp_endpoint: String,
}

impl LogSettings {
    /// The level is a valid tracing filter; the OTLP endpoint, when set, an http(s) URL.
    pub fn validate(&self) -> Result<(), Invalid> {
        let otlp = &self.otlp_endpoint;
        if !otlp.is_empty() {
            http_url("log.otlp_endpoint", otlp)?;
        }
        tracing_subscriber::EnvFilter::try_new(&self.level).map_err(|e| {
            Invalid::new(
                "log.level",
                format!("{:?} is not a valid filter: {e}", self.level),
            )
        })?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_caught_panic_is_one_json_line_inside_its_span() {
        let settings = LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Json,
            otlp_endpoint: String::new(),
        };
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber =
            tracing_subscriber::registry().with(log_lines(&settings, move || writer.clone(), false));
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(tracing_panic::panic_hook));
        tracing::subscriber::with_default(subscriber, || {
            let outcome = std::panic::catch_unwind(|| {
                let _job = tracing::info_span!("job", job_id = "j-1").entered();
                panic!("boom {}", 7);
            });
            assert!(outcome.is_err());
        });
        std::panic::set_hook(previous);

        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line:?}")))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["level"], "ERROR", "{text}");
        assert_eq!(lines[0]["panic.payload"], "boom 7", "{text}");
        assert!(
            lines[0]["panic.location"]
                .as_str()
                .unwrap()
                .contains("telemetry.rs"),
            "{text}"
        );
        assert_eq!(lines[0]["span"]["job_id"], "j-1", "{text}");
    }
}
