//! The echo service: the load generator's baseline (served bare, with no platform stack) and a
//! probe for the server builder's behaviour (served through it).

use std::{net::SocketAddr, time::Duration};

use tonic::{Request, Response, Status};

use crate::pb::loadtest::{
    EchoRequest, EchoResponse,
    echo_service_server::{EchoService, EchoServiceServer},
};

/// Answers with the message it got, after `delay_ms`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

/// The message that makes the echo service panic (the server's panic guard is tested with it).
pub const PANIC: &str = "panic";

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let req = request.into_inner();
        if req.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(req.delay_ms))).await;
        }
        assert_ne!(req.message, PANIC, "the echo handler was asked to panic");
        Ok(Response::new(EchoResponse { message: req.message }))
    }

    type EchoStreamStream = futures::stream::BoxStream<'static, Result<EchoResponse, Status>>;

    async fn echo_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Self::EchoStreamStream>, Status> {
        use futures::StreamExt;
        let message = request.into_inner().message;
        let items = futures::stream::iter(0..3).map(move |i| {
            assert!(!(i == 1 && message == PANIC), "the echo stream was asked to panic");
            Ok(EchoResponse { message: message.clone() })
        });
        Ok(Response::new(items.boxed()))
    }
}

pub fn service() -> EchoServiceServer<Echo> {
    EchoServiceServer::new(Echo)
}

/// Serves the bare echo service (plain tonic, default settings) on 127.0.0.1:0 until the
/// returned handle is dropped.
pub async fn spawn_bare() -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let handle = tokio::spawn(async move {
        if let Err(e) =
            tonic::transport::Server::builder().add_service(service()).serve_with_incoming(incoming).await
        {
            tracing::error!(error = %e, "echo baseline stopped");
        }
    });
    Ok((addr, handle))
}
