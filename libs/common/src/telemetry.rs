//! Telemetry: one initialiser for logs and traces, returning a guard that flushes on drop.
//!
//! Logs go to stderr, pretty or JSON (`TT_LOG_FORMAT`), filtered with RUST_LOG syntax (`TT_LOG`,
//! or `RUST_LOG` when that is set). When `TT_OTLP_ENDPOINT` is set, spans are exported over
//! OTLP/gRPC as well. W3C trace context is read from incoming gRPC metadata by the server stack
//! ([`extract_context`]) and written into outgoing peer calls ([`inject_context`]).

use opentelemetry::{
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, TelemetryArgs};

/// Flushes and shuts down trace export when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("trace export shutdown failed: {e}");
        }
    }
}

/// Installs the global subscriber for `service`. Safe to call more than once (tests): later calls
/// keep the first subscriber.
pub fn init(args: &TelemetryArgs, service: &str) -> Result<TelemetryGuard, crate::config::ConfigError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter_text = std::env::var("RUST_LOG").unwrap_or_else(|_| args.log.clone());
    let filter = EnvFilter::try_new(&filter_text).map_err(|e| {
        crate::config::ConfigError::new("TT_LOG", format!("{filter_text:?} is not a valid filter: {e}"))
    })?;

    let fmt = match args.log_format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };

    let mut provider = None;
    let otel = if args.otlp_endpoint.is_empty() {
        None
    } else {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(args.otlp_endpoint.clone())
            .build()
            .map_err(|e| crate::config::ConfigError::new("TT_OTLP_ENDPOINT", e.to_string()))?;
        let p = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
            .build();
        let tracer = p.tracer(service.to_owned());
        provider = Some(p);
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    };

    // A second initialisation (tests in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
    Ok(TelemetryGuard { provider })
}

use opentelemetry_otlp::WithExportConfig as _;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` a child of the trace context in incoming request headers, if any.
pub fn extract_context(headers: &http::HeaderMap, span: &tracing::Span) {
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(cx);
}

/// Writes the current span's trace context into outgoing request headers.
pub fn inject_context(headers: &mut http::HeaderMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
}
