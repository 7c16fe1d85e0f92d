//! A small HTTP/1.1 endpoint taking Manus' task notifications, for a deployment that prefers
//! them to polling. Off unless a binary that runs agent tasks configures it.
//!
//! Only `POST` to the configured path is served. A notification is verified
//! ([`WebhookVerifier`]), kept once per event id (in the shared cache, for a day: Manus may
//! deliver twice, and to any replica), and handed to the service's queue; Manus gets 200 at
//! once (it wants an answer within 10 s), and the work happens off the request. A forged or
//! stale notification gets 401, a malformed one 400, a body over the limit 413, and a full
//! queue or an unreachable cache 503, so that Manus delivers it again.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::mpsc, task::JoinSet};
use tt_common::cache::Cache;

use super::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookError, WebhookEvent, WebhookVerifier};

/// The largest notification body taken.
pub const MAX_BODY: usize = 1 << 20;
const SEEN_FOR: Duration = Duration::from_secs(24 * 3600);

pub struct Receiver {
    path: String,
    verifier: WebhookVerifier,
    seen: Cache,
    deliveries: mpsc::Sender<WebhookEvent>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("path", &self.path).field("verifier", &self.verifier).finish()
    }
}

impl Receiver {
    /// Serves the path of the verifier's URL; verified notifications go to `deliveries`.
    pub fn new(verifier: WebhookVerifier, seen: Cache, deliveries: mpsc::Sender<WebhookEvent>) -> Self {
        let path =
            reqwest::Url::parse(verifier.url()).map_or_else(|_| "/".to_owned(), |u| u.path().to_owned());
        Self { path, verifier, seen: seen.scoped("manus-webhook:"), deliveries }
    }

    /// Accepts connections on `listener` until the future is dropped (which closes them).
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let mut connections = JoinSet::new();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "the Manus webhook listener failed to accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            let receiver = Arc::clone(&self);
            connections.spawn(async move {
                let service = service_fn(move |request| {
                    let receiver = Arc::clone(&receiver);
                    async move { Ok::<_, Infallible>(receiver.respond(request).await) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "a Manus webhook connection failed");
                }
            });
        }
    }

    async fn respond(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (status, text) = self.take(request).await;
        let mut response = Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = status;
        response
    }

    async fn take(&self, request: Request<Incoming>) -> (StatusCode, String) {
        if request.uri().path() != self.path {
            return (StatusCode::NOT_FOUND, "not found".into());
        }
        if request.method() != hyper::Method::POST {
            return (StatusCode::METHOD_NOT_ALLOWED, "POST only".into());
        }
        let header = |name: &str| {
            request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
        };
        let (timestamp, signature) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
        let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "the body is over the limit".into()),
        };
        match self.verifier.verify(&timestamp, &signature, &body).await {
            Ok(event) => self.keep(event).await,
            Err(e @ WebhookError::Malformed(_)) => (StatusCode::BAD_REQUEST, e.to_string()),
            Err(e @ WebhookError::KeyUnavailable(_)) => {
                tracing::warn!(error = %e, "a Manus notification could not be verified");
                (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            Err(e) => {
                tracing::warn!(error = %e, "a Manus notification was refused");
                (StatusCode::UNAUTHORIZED, e.to_string())
            }
        }
    }

    /// Queues a verified notification once per event id.
    async fn keep(&self, event: WebhookEvent) -> (StatusCode, String) {
        let unavailable = |what: &str| (StatusCode::SERVICE_UNAVAILABLE, what.to_owned());
        let key = event.event_id.clone();
        match self.seen.set_if_absent(&key, b"1", SEEN_FOR).await {
            Err(e) => {
                tracing::warn!(error = %e, "the cache keeping Manus notifications is unreachable");
                return unavailable("try again");
            }
            Ok(false) => return (StatusCode::OK, "already received".into()),
            Ok(true) => {}
        }
        if self.deliveries.try_send(event).is_err() {
            // Not kept: forget it, so the next delivery is taken.
            if let Err(e) = self.seen.delete(&key).await {
                tracing::warn!(error = %e, event = key, "a refused Manus notification stays marked as received");
            }
            return unavailable("busy; try again");
        }
        (StatusCode::OK, "received".into())
    }
}
