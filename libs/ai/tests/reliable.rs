//! The retry loop, breakers, fallback and deadline against real HTTP (wiremock), with the
//! breakers on a clock the test moves.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tt_ai::{
    AiError, BreakerPolicy, ChatProvider, ChatRequest, Message, OpenAiCompatible, OpenAiConfig, Reliable,
    RetryPolicy, complete,
};
use tt_common::clock::ManualClock;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::path};

fn ask() -> ChatRequest {
    ChatRequest { messages: vec![Message::user("hi")], ..ChatRequest::default() }
}

fn reply(text: &str) -> ResponseTemplate {
    let body = format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}]}}\n\n\
         data: [DONE]\n\n"
    );
    ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(body)
}

fn endpoint(server: &MockServer, name: &str) -> Arc<dyn ChatProvider> {
    let config = OpenAiConfig::new(name, &format!("{}/{name}", server.uri()), &format!("{name}-model"));
    Arc::new(OpenAiCompatible::new(config).expect("client"))
}

fn retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        deadline: Duration::from_secs(20),
    }
}

const BREAKER: BreakerPolicy = BreakerPolicy { failures: 2, cool_down: Duration::from_secs(30) };

async fn requests_to(server: &MockServer, name: &str) -> usize {
    let prefix = format!("/{name}/");
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().starts_with(&prefix))
        .count()
}

/// A chain whose breakers open after five failures in a row (more than a call's retries).
fn chain(server: &MockServer, names: &[&str], retry: RetryPolicy, clock: &ManualClock) -> Reliable {
    let links = names.iter().map(|n| endpoint(server, n)).collect();
    Reliable::new(links, retry, BreakerPolicy::default(), Arc::new(clock.clone()))
}

#[tokio::test]
async fn server_errors_are_retried_until_a_reply_and_refusals_are_not() {
    let server = MockServer::start().await;
    Mock::given(path("/a/chat/completions"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/a/chat/completions")).respond_with(reply("third time")).mount(&server).await;
    Mock::given(path("/bad/chat/completions"))
        .respond_with(ResponseTemplate::new(400).set_body_string(r#"{"error":{"message":"bad field"}}"#))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let done = complete(&chain(&server, &["a"], retry(3), &clock), ask()).await.expect("a reply");
    assert_eq!((done.text.as_str(), done.fallback), ("third time", false));
    assert_eq!(requests_to(&server, "a").await, 3);

    let refused = complete(&chain(&server, &["bad"], retry(3), &clock), ask()).await.expect_err("400");
    assert!(matches!(refused, AiError::Refused { .. }), "{refused:?}");
    assert_eq!(requests_to(&server, "bad").await, 1, "a 400 is sent once");
}

#[tokio::test]
async fn retry_after_is_waited_for_and_a_wait_past_the_deadline_is_not() {
    let server = MockServer::start().await;
    Mock::given(path("/slow/chat/completions"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after-ms", "300"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/slow/chat/completions")).respond_with(reply("ok")).mount(&server).await;
    Mock::given(path("/later/chat/completions"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "600"))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let started = Instant::now();
    complete(&chain(&server, &["slow"], retry(3), &clock), ask()).await.expect("a reply after the wait");
    assert!(started.elapsed() >= Duration::from_millis(300), "waited as asked: {:?}", started.elapsed());

    let started = Instant::now();
    let e = complete(&chain(&server, &["later"], retry(3), &clock), ask()).await.expect_err("429");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(600)));
    assert_eq!(requests_to(&server, "later").await, 1, "no retry that would end after the deadline");
    assert!(started.elapsed() < Duration::from_secs(10), "gave up at once, not after the wait");
}

#[tokio::test]
async fn a_breaker_opens_fails_fast_then_lets_one_probe_close_it() {
    let server = MockServer::start().await;
    Mock::given(path("/flaky/chat/completions"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/flaky/chat/completions")).respond_with(reply("back")).mount(&server).await;
    let clock = ManualClock::new();
    let flaky = Reliable::new(vec![endpoint(&server, "flaky")], retry(1), BREAKER, Arc::new(clock.clone()));
    for _ in 0..2 {
        let e = complete(&flaky, ask()).await.expect_err("503");
        assert!(matches!(e, AiError::Unavailable { .. }), "{e:?}");
    }
    let breaker = flaky.breaker(0).expect("its breaker");
    assert!(breaker.is_open());
    let fast = complete(&flaky, ask()).await.expect_err("open");
    assert!(matches!(fast, AiError::BreakerOpen { .. }) && fast.is_retryable(), "{fast:?}");
    assert_eq!(requests_to(&server, "flaky").await, 2, "nothing sent while open");

    // After the cool-down one probe goes; it fails (the third 503) and the breaker re-opens.
    clock.advance(BREAKER.cool_down);
    assert!(matches!(complete(&flaky, ask()).await, Err(AiError::Unavailable { .. })));
    assert!(matches!(complete(&flaky, ask()).await, Err(AiError::BreakerOpen { .. })));
    assert_eq!(requests_to(&server, "flaky").await, 3);
    // The next probe succeeds and closes it.
    clock.advance(BREAKER.cool_down);
    assert_eq!(complete(&flaky, ask()).await.expect("probe").text, "back");
    assert!(!breaker.is_open());
    assert_eq!(complete(&flaky, ask()).await.expect("closed").text, "back");
}

#[tokio::test]
async fn the_chain_falls_back_on_exhaustion_and_context_length_but_not_on_refusals() {
    let server = MockServer::start().await;
    Mock::given(path("/down/chat/completions")).respond_with(ResponseTemplate::new(502)).mount(&server).await;
    Mock::given(path("/small/chat/completions"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_string(r#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#),
        )
        .mount(&server)
        .await;
    Mock::given(path("/denied/chat/completions"))
        .respond_with(ResponseTemplate::new(403).set_body_string(r#"{"error":{"message":"not for you"}}"#))
        .mount(&server)
        .await;
    Mock::given(path("/spare/chat/completions")).respond_with(reply("spare here")).mount(&server).await;
    let clock = ManualClock::new();

    let done =
        complete(&chain(&server, &["down", "spare"], retry(2), &clock), ask()).await.expect("fallback");
    assert_eq!((done.text.as_str(), done.provider.as_str(), done.fallback), ("spare here", "spare", true));
    assert_eq!(requests_to(&server, "down").await, 2, "retried, then fell back");

    let done = complete(&chain(&server, &["small", "spare"], retry(2), &clock), ask()).await.expect("bigger");
    assert_eq!(done.provider, "spare");
    assert_eq!(requests_to(&server, "small").await, 1, "a context error is not retried");

    let e = complete(&chain(&server, &["denied", "spare"], retry(2), &clock), ask()).await.expect_err("403");
    assert!(matches!(&e, AiError::Refused { detail, .. } if detail.contains("not for you")), "{e:?}");
    assert_eq!(requests_to(&server, "spare").await, 2, "a refusal does not fall back");
}

#[tokio::test]
async fn an_open_breaker_falls_back_without_calling_its_endpoint() {
    let server = MockServer::start().await;
    Mock::given(path("/down/chat/completions")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    Mock::given(path("/spare/chat/completions")).respond_with(reply("spare here")).mount(&server).await;
    let clock = ManualClock::new();
    let both = chain(&server, &["down", "spare"], retry(1), &clock);
    // Five failed calls open the first breaker (each fell back and was answered).
    for _ in 0..5 {
        assert_eq!(complete(&both, ask()).await.expect("fallback").provider, "spare");
    }
    assert!(both.breaker(0).is_some_and(|b| b.is_open()));
    assert_eq!(requests_to(&server, "down").await, 5);
    let done = complete(&both, ask()).await.expect("fallback");
    assert_eq!((done.provider.as_str(), done.fallback), ("spare", true));
    assert_eq!(requests_to(&server, "down").await, 5, "the open endpoint was not called");
}

#[tokio::test]
async fn the_callers_deadline_bounds_the_whole_call() {
    let server = MockServer::start().await;
    Mock::given(path("/stuck/chat/completions"))
        .respond_with(reply("too late").set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let stuck = chain(&server, &["stuck"], retry(3), &clock);
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_millis(300);
    let e = stuck.stream_until(ask(), Some(deadline)).await.err().expect("deadline");
    assert_eq!(e, AiError::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(10), "ended at the deadline: {:?}", started.elapsed());
    assert_eq!(requests_to(&server, "stuck").await, 1);
}
