//! The OpenAI-compatible provider against real HTTP: wiremock for whole responses, a raw TCP
//! server for streams that stall or whose reader goes away.

use std::time::Duration;

use futures::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tt_ai::{
    AiError, ChatEvent, ChatProvider, ChatRequest, Embedder, FinishReason, Message, OpenAiCompatible,
    OpenAiConfig, Usage, complete,
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_partial_json, header, method, path},
};

fn provider(base: &str) -> OpenAiCompatible {
    let mut config = OpenAiConfig::new("test", base, "m");
    config.api_key = Some("k".into());
    config.stall = Duration::from_millis(300);
    OpenAiCompatible::new(config).expect("client")
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest { messages: vec![Message::user(text)], ..ChatRequest::default() }
}

fn sse(events: &[&str]) -> ResponseTemplate {
    let body: String = events.iter().map(|e| format!("{e}\n\n")).collect();
    ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(body)
}

#[tokio::test]
async fn streams_deltas_then_the_completion_with_the_usage_of_the_final_chunk() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer k"))
        .and(body_partial_json(serde_json::json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}],
        })))
        .respond_with(sse(&[
            ": keep-alive",
            r#"data: {"model":"m-2024","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
            r#"data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":4}}}"#,
            "data: [DONE]",
        ]))
        .expect(1)
        .mount(&server)
        .await;
    let p = provider(&format!("{}/v1", server.uri()));
    let mut stream = p.stream(ask("hi")).await.expect("stream");
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event.expect("no error"));
    }
    assert_eq!(events[..2], [ChatEvent::Delta("Hel".into()), ChatEvent::Delta("lo".into())]);
    let ChatEvent::Done(done) = &events[2] else { panic!("a completion last: {events:?}") };
    assert_eq!(done.text, "Hello");
    assert_eq!(done.finish, FinishReason::Stop);
    assert_eq!(done.usage, Usage { prompt: 12, completion: 2, cached: 4, estimated: false });
    assert_eq!((done.provider.as_str(), done.model.as_str()), ("test", "m-2024"));
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn statuses_and_error_bodies_become_errors_that_say_whether_to_retry() {
    let server = MockServer::start().await;
    let cases: Vec<(&str, ResponseTemplate)> = vec![
        ("ms", ResponseTemplate::new(429).insert_header("retry-after-ms", "1500").insert_header("retry-after", "9")),
        ("secs", ResponseTemplate::new(429).insert_header("retry-after", "2")),
        (
            "quota",
            ResponseTemplate::new(429).set_body_string(
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
            ),
        ),
        ("down", ResponseTemplate::new(503).set_body_string(r#"{"object":"error","message":"overloaded","code":503}"#)),
        (
            "context",
            ResponseTemplate::new(400)
                .set_body_string(r#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#),
        ),
        (
            "vllm-context",
            ResponseTemplate::new(400).set_body_string(
                r#"{"error":{"message":"This model's maximum context length is 4096 tokens","type":"BadRequestError","code":400}}"#,
            ),
        ),
        ("key", ResponseTemplate::new(401).set_body_string(r#"{"error":{"message":"bad key","code":"401"}}"#)),
    ];
    for (name, response) in cases {
        Mock::given(path(format!("/{name}/chat/completions"))).respond_with(response).mount(&server).await;
    }
    let call = |name: &str| {
        let p = provider(&format!("{}/{name}", server.uri()));
        async move { complete(&p, ask("hi")).await.expect_err("an error") }
    };
    let e = call("ms").await;
    assert_eq!(
        e,
        AiError::RateLimited { provider: "test".into(), retry_after: Some(Duration::from_millis(1500)) }
    );
    assert!(e.is_retryable());
    assert_eq!(call("secs").await.retry_after(), Some(Duration::from_secs(2)));
    let quota = call("quota").await;
    assert!(matches!(quota, AiError::Refused { .. }) && !quota.is_retryable(), "{quota:?}");
    let down = call("down").await;
    assert!(
        matches!(&down, AiError::Unavailable { detail, .. } if detail.contains("overloaded")),
        "{down:?}"
    );
    assert!(down.is_retryable());
    assert_eq!(call("context").await, AiError::ContextLength { model: "m".into() });
    assert_eq!(call("vllm-context").await, AiError::ContextLength { model: "m".into() });
    let key = call("key").await;
    assert!(
        matches!(&key, AiError::Refused { detail, .. } if detail.contains("bad key")) && !key.is_retryable()
    );
}

#[tokio::test]
async fn an_error_inside_a_200_stream_and_a_stream_cut_short_are_failures() {
    let server = MockServer::start().await;
    Mock::given(path("/inband/chat/completions"))
        .respond_with(sse(&[
            r#"data: {"choices":[{"index":0,"delta":{"content":"par"}}]}"#,
            r#"data: {"error":{"message":"upstream exploded","code":500}}"#,
            "data: [DONE]",
        ]))
        .mount(&server)
        .await;
    Mock::given(path("/cut/chat/completions"))
        .respond_with(sse(&[r#"data: {"choices":[{"index":0,"delta":{"content":"par"}}]}"#]))
        .mount(&server)
        .await;
    Mock::given(path("/nodone/chat/completions"))
        .respond_with(sse(&[
            r#"data: {"choices":[{"index":0,"delta":{"content":"whole"},"finish_reason":"length"}]}"#,
        ]))
        .mount(&server)
        .await;
    let inband =
        complete(&provider(&format!("{}/inband", server.uri())), ask("hi")).await.expect_err("in-band");
    assert!(
        matches!(&inband, AiError::Unavailable { detail, .. } if detail.contains("upstream exploded")),
        "{inband:?}"
    );
    let cut = complete(&provider(&format!("{}/cut", server.uri())), ask("hi")).await.expect_err("cut");
    assert_eq!(cut, AiError::Truncated { provider: "test".into() });
    // A finish reason without `[DONE]` (and without usage) is a whole reply, its usage estimated.
    let whole = complete(&provider(&format!("{}/nodone", server.uri())), ask("hi")).await.expect("whole");
    assert_eq!((whole.text.as_str(), whole.finish), ("whole", FinishReason::Length));
    assert!(whole.usage.estimated && whole.usage.completion > 0, "{:?}", whole.usage);
}

/// A server that answers one request with the headers and `first` SSE event, then sends
/// nothing more; reports when the client closed the connection.
async fn silent_after_first_event(first: &'static str) -> (String, tokio::sync::oneshot::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (closed, on_closed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let mut seen = Vec::new();
        let mut buf = [0_u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let event = format!("data: {first}\n\n");
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let chunk = format!("{head}{:x}\r\n{event}\r\n", event.len());
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            return;
        }
        // Hold the connection open until the client drops it (the rest of the body is ignored).
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = closed.send(());
    });
    (format!("http://{addr}/v1"), on_closed)
}

const FIRST: &str = r#"{"choices":[{"index":0,"delta":{"content":"Once"}}]}"#;

#[tokio::test]
async fn a_stalled_stream_fails_cleanly_after_the_stall_time() {
    let (base, _closed) = silent_after_first_event(FIRST).await;
    let mut stream = provider(&base).stream(ask("hi")).await.expect("stream");
    assert_eq!(stream.next().await.expect("first").expect("delta"), ChatEvent::Delta("Once".into()));
    let stalled = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("not a hang");
    assert_eq!(
        stalled.expect("an event").expect_err("stalled"),
        AiError::Stalled { provider: "test".into(), after: Duration::from_millis(300) }
    );
    assert!(stream.next().await.is_none(), "nothing after the failure");
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_connection_at_once() {
    let (base, closed) = silent_after_first_event(FIRST).await;
    let mut config = OpenAiConfig::new("test", &base, "m");
    config.stall = Duration::from_secs(60);
    let p = OpenAiCompatible::new(config).expect("client");
    let mut stream = p.stream(ask("hi")).await.expect("stream");
    assert!(matches!(stream.next().await, Some(Ok(ChatEvent::Delta(_)))));
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the server saw the connection close well before the stall time")
        .expect("closed");
}

#[tokio::test]
async fn an_endpoint_that_is_not_there_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let e = complete(&provider(&format!("http://{addr}/v1")), ask("hi")).await.expect_err("refused");
    assert!(matches!(e, AiError::Unavailable { .. }) && e.is_retryable(), "{e:?}");
}

#[tokio::test]
async fn embeddings_come_back_in_input_order_with_the_configured_dimension() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(body_partial_json(serde_json::json!({"model": "e", "input": ["a", "b"]})))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"object":"list","data":[{"object":"embedding","embedding":[0.0,1.0,0.0],"index":1},
               {"object":"embedding","embedding":[1.0,0.0,0.0],"index":0}],"model":"e","usage":{"prompt_tokens":2,"total_tokens":2}}"#,
        ))
        .mount(&server)
        .await;
    let p = provider(&format!("{}/v1", server.uri()));
    let e = p.embedder("e", 3);
    let vectors = e.embed(vec!["a".into(), "b".into()]).await.expect("vectors");
    assert_eq!(vectors, vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]]);
    let wrong = p.embedder("e", 4).embed(vec!["a".into(), "b".into()]).await.expect_err("dimension");
    assert!(
        matches!(&wrong, AiError::Refused { detail, .. } if detail.contains("3-dimensional")),
        "{wrong:?}"
    );
    assert_eq!(e.embed(Vec::new()).await.expect("nothing to do"), Vec::<Vec<f32>>::new());
}

#[tokio::test]
async fn the_moderation_endpoint_flags_by_category_and_its_failures_are_errors() {
    use tt_ai::{Moderator, Verdict};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/moderations"))
        .and(body_partial_json(serde_json::json!({"model": "omni", "input": "bad words"})))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"id":"modr-1","model":"omni","results":[{"flagged":true,
               "categories":{"harassment":true,"violence":false,"self-harm":true},"category_scores":{}}]}"#,
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/moderations"))
        .and(body_partial_json(serde_json::json!({"input": "kind words"})))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"id":"modr-2","model":"omni","results":[{"flagged":false,"categories":{"harassment":false}}]}"#,
        ))
        .mount(&server)
        .await;
    let m = provider(&format!("{}/v1", server.uri())).moderator("omni");
    assert_eq!(
        m.check("bad words").await,
        Ok(Verdict::Flagged(vec!["harassment".into(), "self-harm".into()]))
    );
    assert_eq!(m.check("kind words").await, Ok(Verdict::Allowed));
    let down = provider(&format!("{}/none", server.uri())).moderator("omni");
    let e = down.check("anything").await.expect_err("404");
    assert!(matches!(e, AiError::Refused { .. }), "{e:?}");
}
