//! Prometheus metrics per RPC: `grpc_server_handled_total{service,method,code}` and the
//! `grpc_server_handling_seconds` histogram, served on their own port.
//!
//! A gRPC status usually travels in the trailers, after the body, so [`ObservedBody`] records
//! the call when the trailers pass (or when the body is dropped before them: CANCELLED).

use std::{
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};
use metrics_exporter_prometheus::PrometheusBuilder;
use tonic::codegen::Bytes;

/// Installs the global recorder and its HTTP listener. Call once per process.
pub fn install_exporter(addr: SocketAddr) -> Result<(), metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("grpc_server_handling_seconds".into()),
            &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .install()
}

/// Records one finished call.
pub fn record(service: &str, method: &str, code: tonic::Code, started: Instant) {
    let labels =
        [("service", service.to_owned()), ("method", method.to_owned()), ("code", format!("{code:?}"))];
    metrics::counter!("grpc_server_handled_total", &labels).increment(1);
    metrics::histogram!("grpc_server_handling_seconds", &labels[..2]).record(started.elapsed().as_secs_f64());
}

/// The parts of a call the metrics need.
#[derive(Debug, Clone)]
pub struct CallLabels {
    pub service: String,
    pub method: String,
    pub started: Instant,
}

/// Splits `/pkg.Service/Method` into service and method.
pub fn split_path(path: &str) -> (&str, &str) {
    let trimmed = path.trim_start_matches('/');
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

/// Reads a `grpc-status` header value.
pub fn code_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<i32>().ok())
        .map(tonic::Code::from)
}

pin_project_lite::pin_project! {
    /// A response body that records the call's metrics when its status is known, passes its
    /// trailers through [`super::edge::normalize`], and ends with INTERNAL trailers (instead of
    /// a reset stream) should producing the body panic.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        labels: CallLabels,
        // The call's outcome is counted (from the headers of a trailers-only response, or
        // once the body ended).
        recorded: bool,
        done: bool,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.recorded {
                record(&this.labels.service, &this.labels.method, tonic::Code::Cancelled, this.labels.started);
            }
        }
    }
}

impl<B> ObservedBody<B> {
    /// `recorded` when the status was already known (and recorded) from the headers.
    pub fn new(inner: B, labels: CallLabels, recorded: bool) -> Self {
        Self { inner, labels, recorded, done: false }
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let labels: &CallLabels = this.labels;
        let mut outcome = |code: tonic::Code| {
            if !std::mem::replace(this.recorded, true) {
                record(&labels.service, &labels.method, code, labels.started);
            }
        };
        let mut inner = this.inner;
        let polled =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll_frame(cx))) {
                Ok(polled) => polled,
                Err(panic) => {
                    *this.done = true;
                    let status = super::stack::panicked(&labels.service, &labels.method, panic.as_ref());
                    let mut trailers = http::HeaderMap::new();
                    if status.add_header(&mut trailers).is_err() {
                        trailers.insert("grpc-status", http::HeaderValue::from(tonic::Code::Internal as i32));
                    }
                    outcome(tonic::Code::Internal);
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
            };
        let mut polled = polled;
        match &mut polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_mut() {
                    super::edge::normalize(trailers);
                    outcome(code_of(trailers).unwrap_or(tonic::Code::Unknown));
                }
            }
            Poll::Ready(Some(Err(_))) => outcome(tonic::Code::Internal),
            Poll::Ready(None) => outcome(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
