//! The server builder's behaviour, probed with the echo service: readiness and health,
//! shutdown, request ids, deadlines, load shedding, authentication and reflection.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tt_common::{config::ServerArgs, server::ServerBuilder};
use tt_e2e::{
    echo,
    pb::{
        loadtest::{EchoRequest, echo_service_client::EchoServiceClient},
        reflection_v1, reflection_v1alpha,
    },
};
use tt_testkit::TestServer;

const ECHO: &str = "timetravelers.loadtest.v1.EchoService";

fn builder(args: ServerArgs, public: bool) -> ServerBuilder {
    let mut b = ServerBuilder::new(args);
    b.add_service(echo::service(), tt_e2e::pb::loadtest::FILE_DESCRIPTOR_SET);
    if public {
        b.public(&format!("/{ECHO}/"));
    }
    b
}

async fn health(ch: &Channel, service: &str) -> Result<i32, Code> {
    HealthClient::new(ch.clone())
        .check(HealthCheckRequest { service: service.into() })
        .await
        .map(|r| r.into_inner().status)
        .map_err(|s| s.code())
}

fn echo_req(delay_ms: u32) -> EchoRequest {
    EchoRequest { message: "hi".into(), delay_ms }
}

#[tokio::test]
async fn a_service_is_not_serving_until_its_readiness_check_passes() {
    let ready = Arc::new(AtomicBool::new(false));
    let mut b = builder(ServerArgs::for_tests(), true);
    let flag = ready.clone();
    b.ready_when(
        &[ECHO],
        Box::new(move || {
            let flag = flag.clone();
            Box::pin(async move {
                if flag.load(Ordering::SeqCst) { Ok(()) } else { Err("migrations pending".into()) }
            })
        }),
    );
    let server = TestServer::spawn_unready(b).await;
    let ch = server.channel().await;
    assert_eq!(health(&ch, ECHO).await, Ok(ServingStatus::NotServing as i32));
    assert_eq!(health(&ch, "").await, Ok(ServingStatus::NotServing as i32));
    assert_eq!(health(&ch, "no.such.Service").await, Err(Code::NotFound));
    assert_eq!(health(&ch, tt_common::server::LIVENESS).await, Ok(ServingStatus::Serving as i32));
    let err = EchoServiceClient::new(ch.clone()).echo(echo_req(0)).await.expect_err("not ready");
    assert_eq!(err.code(), Code::Unavailable);
    ready.store(true, Ordering::SeqCst);
    server.wait_serving(ECHO).await;
    server.wait_serving("").await;
    EchoServiceClient::new(ch).echo(echo_req(0)).await.expect("ready");
}

#[tokio::test]
async fn shutdown_reports_not_serving_at_once_and_keeps_serving_while_draining() {
    let mut args = ServerArgs::for_tests();
    args.shutdown_drain.0 = Duration::from_millis(600);
    let server = TestServer::spawn(builder(args, true)).await;
    let ch = server.channel().await;
    let shutdown = server.shutdown_handle();
    shutdown.trigger();
    let mut not_serving = false;
    for _ in 0..50 {
        if health(&ch, ECHO).await == Ok(ServingStatus::NotServing as i32) {
            not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(not_serving, "health never turned NOT_SERVING");
    EchoServiceClient::new(ch).echo(echo_req(0)).await.expect("still served during the drain");
    tokio::time::timeout(Duration::from_secs(10), server.stop()).await.expect("stops within drain + grace");
}

#[tokio::test]
async fn request_ids_are_returned_and_generated() {
    let server = TestServer::spawn(builder(ServerArgs::for_tests(), true)).await;
    let mut client = EchoServiceClient::new(server.channel().await);
    let mut req = tonic::Request::new(echo_req(0));
    req.metadata_mut().insert("x-request-id", "req-42".parse().expect("header"));
    let reply = client.echo(req).await.expect("echo");
    assert_eq!(reply.metadata().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-42"));
    let reply = client.echo(echo_req(0)).await.expect("echo");
    let generated = reply.metadata().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(tt_common::is_id(generated), "{generated:?}");
}

#[tokio::test]
async fn slow_calls_get_deadline_exceeded() {
    let mut args = ServerArgs::for_tests();
    args.request_timeout.0 = Duration::from_millis(100);
    let server = TestServer::spawn(builder(args, true)).await;
    let mut client = EchoServiceClient::new(server.channel().await);
    let err = client.echo(echo_req(2_000)).await.expect_err("server timeout");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    // The caller's shorter grpc-timeout is honoured too (sent as a header only, so the answer
    // is the server's, not the client's own timer). tonic runs its own header timer outside the
    // stack, which answers CANCELLED when it fires first; the stack's fires a little earlier and
    // usually wins with DEADLINE_EXCEEDED.
    let mut req = tonic::Request::new(echo_req(1_000));
    req.metadata_mut().insert("grpc-timeout", "20m".parse().expect("header"));
    let started = std::time::Instant::now();
    let code = client.echo(req).await.expect_err("caller deadline").code();
    assert!(matches!(code, Code::DeadlineExceeded | Code::Cancelled), "{code:?}");
    assert!(started.elapsed() < Duration::from_millis(900), "the handler was not cut short");
    client.echo(echo_req(0)).await.expect("fast calls pass");
}

#[tokio::test]
async fn past_the_concurrency_limit_calls_are_shed_not_queued() {
    let mut args = ServerArgs::for_tests();
    args.max_concurrent_requests = 2;
    let server = TestServer::spawn(builder(args, true)).await;
    let ch = server.channel().await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let mut c = EchoServiceClient::new(ch.clone());
            tokio::spawn(async move { c.echo(echo_req(400)).await.map(|_| ()).map_err(|s| s.code()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Probes are never shed.
    assert_eq!(health(&ch, ECHO).await, Ok(ServingStatus::Serving as i32));
    let mut ok = 0;
    let mut shed = 0;
    for c in calls {
        match c.await.expect("task") {
            Ok(()) => ok += 1,
            Err(Code::ResourceExhausted) => shed += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!((1..=2).contains(&ok), "{ok} calls ran at once");
    assert_eq!(ok + shed, 6);
}

#[tokio::test]
async fn non_public_methods_need_a_token() {
    let server = TestServer::spawn(builder(ServerArgs::for_tests(), false)).await;
    let err = EchoServiceClient::new(server.channel().await).echo(echo_req(0)).await.expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_and_describe_everything() {
    let server = TestServer::spawn(builder(ServerArgs::for_tests(), true)).await;
    let ch = server.channel().await;

    use reflection_v1::{
        ServerReflectionRequest as R1, server_reflection_client::ServerReflectionClient as C1,
        server_reflection_request::MessageRequest as M1, server_reflection_response::MessageResponse as P1,
    };
    let ask = |m: M1| R1 { host: String::new(), message_request: Some(m) };
    let requests = vec![
        ask(M1::ListServices(String::new())),
        ask(M1::FileContainingSymbol("google.rpc.ErrorInfo".into())),
    ];
    let mut stream = C1::new(ch.clone())
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("v1 reflection")
        .into_inner();
    let Some(Ok(first)) = stream.next().await else { panic!("no v1 answer") };
    let Some(P1::ListServicesResponse(list)) = first.message_response else { panic!("not a list") };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [ECHO, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    let Some(Ok(second)) = stream.next().await else { panic!("no v1 answer") };
    assert!(
        matches!(second.message_response, Some(P1::FileDescriptorResponse(_))),
        "error details not described"
    );

    use reflection_v1alpha::{
        ServerReflectionRequest as R0, server_reflection_client::ServerReflectionClient as C0,
        server_reflection_request::MessageRequest as M0, server_reflection_response::MessageResponse as P0,
    };
    let request = R0 { host: String::new(), message_request: Some(M0::FileContainingSymbol(ECHO.into())) };
    let mut stream = C0::new(ch)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("v1alpha reflection")
        .into_inner();
    let Some(Ok(answer)) = stream.next().await else { panic!("no v1alpha answer") };
    assert!(matches!(answer.message_response, Some(P0::FileDescriptorResponse(_))));
}

use tokio_stream::StreamExt as _;

#[tokio::test]
async fn peers_retry_unavailable_only_within_their_deadline() {
    use tt_common::client::{Credentials, Peer, PeerOptions};
    // Nothing listens on port 1.
    let mut options = PeerOptions::new("http://127.0.0.1:1");
    options.timeout = Duration::from_millis(800);
    let peer = Peer::connect_lazy(options, Credentials::None).expect("peer");
    let started = std::time::Instant::now();
    let err = peer
        .call(|ch| async move { EchoServiceClient::new(ch).echo(echo_req(0)).await })
        .await
        .expect_err("nobody listens");
    assert!(matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // A live peer answers through the same path, and non-UNAVAILABLE errors are not retried.
    let server = TestServer::spawn(builder(ServerArgs::for_tests(), false)).await;
    let peer = Peer::connect_lazy(PeerOptions::new(server.url()), Credentials::None).expect("peer");
    let err = peer
        .call(|ch| async move { EchoServiceClient::new(ch).echo(echo_req(0)).await })
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_and_the_server_keeps_serving() {
    let server = TestServer::spawn(builder(ServerArgs::for_tests(), true)).await;
    let mut client = EchoServiceClient::new(server.channel().await);
    let req = EchoRequest { message: echo::PANIC.into(), delay_ms: 0 };
    let err = client.echo(req.clone()).await.expect_err("the handler panicked");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert_eq!(tt_common::error::reason(&err).as_deref(), Some("INTERNAL"));
    assert_eq!(err.message(), "internal error", "the panic message is logged, not sent");

    // A stream that panics at its second item ends with INTERNAL trailers, not a reset (the
    // first item may or may not have left: tonic batches what the stream yields at once).
    let mut stream = client.echo_stream(req).await.expect("stream starts").into_inner();
    let mut items = 0;
    let err = loop {
        match stream.message().await {
            Ok(Some(_)) => items += 1,
            Ok(None) => panic!("the stream ended cleanly after {items} items"),
            Err(status) => break status,
        }
    };
    assert!(items <= 1, "{items} items before the panic");
    assert_eq!(err.code(), Code::Internal, "{err:?}");

    client.echo(echo_req(0)).await.expect("still serving");
    let mut ok = client.echo_stream(echo_req(0)).await.expect("stream").into_inner();
    let mut n = 0;
    while ok.message().await.expect("item").is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
}

#[tokio::test]
async fn two_authorization_headers_are_ambiguous_and_refused() {
    let server = TestServer::spawn(builder(ServerArgs::for_tests(), true)).await;
    let mut client = EchoServiceClient::new(server.channel().await);
    let mut req = tonic::Request::new(echo_req(0));
    req.metadata_mut().append("authorization", "Bearer a.b.c".parse().expect("header"));
    req.metadata_mut().append("authorization", "Bearer d.e.f".parse().expect("header"));
    let err = client.echo(req).await.expect_err("ambiguous credentials");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(tt_common::error::reason(&err).as_deref(), Some("AMBIGUOUS_CREDENTIALS"));
}

/// Whether the server closed a raw TCP connection within `within` (EOF or reset on read).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // The server's own SETTINGS frame: keep reading.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn idle_connections_are_closed_and_past_the_cap_new_ones_are_shed() {
    let mut args = ServerArgs::for_tests();
    args.handshake_timeout.0 = Duration::from_millis(400);
    args.max_connections = 3;
    let server = TestServer::spawn(builder(args, true)).await;
    // Three silent connections take every slot; a fourth is closed at once.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(server.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut extra = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    assert!(closed_within(&mut extra, Duration::from_millis(300)).await, "over the cap: shed at once");
    // None of them sent the HTTP/2 preface: all are closed after the handshake timeout.
    for conn in &mut idle {
        assert!(closed_within(conn, Duration::from_secs(5)).await, "an idle connection stayed open");
    }
    // The slots are free again for a real client.
    EchoServiceClient::new(server.channel().await).echo(echo_req(0)).await.expect("served");
}
