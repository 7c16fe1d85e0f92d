//! The Manus v2 client against a mock of its documented API (wiremock), and its webhooks:
//! signatures right, wrong and stale, the key cached and refetched on rotation, and the HTTP
//! receiver keeping each notification once.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::{KeyPair, KeySize},
    signature::{KeyPair as _, RSA_PKCS1_SHA256},
};
use base64::Engine as _;
use serde_json::{Value, json};
use tt_ai::{
    AiError,
    manus::{
        Manus, ManusConfig, Outcome, TaskSpec,
        receiver::Receiver,
        webhook::{EventKind, StopReason, WebhookError, WebhookVerifier},
    },
};
use tt_common::{
    cache::Cache,
    clock::{Clock, ManualClock, SharedClock},
    secrets::hex,
};
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{body_partial_json, header, method, path, query_param},
};

fn config(server: &MockServer) -> ManusConfig {
    let mut config = ManusConfig::new("mk");
    config.base_url = server.uri();
    config.retry.backoff_base = Duration::from_millis(5);
    config.retry.backoff_max = Duration::from_millis(20);
    config.poll_first = Duration::from_millis(5);
    config.poll_max = Duration::from_millis(20);
    config
}

fn client(server: &MockServer, clock: &ManualClock) -> Manus {
    Manus::new(config(server), Arc::new(clock.clone())).expect("client")
}

fn ok(payload: Value) -> ResponseTemplate {
    let mut body = json!({ "ok": true, "request_id": "r1" });
    if let (Value::Object(body), Value::Object(payload)) = (&mut body, payload) {
        body.extend(payload);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

fn failed(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({ "ok": false, "request_id": "r2", "error": { "code": code, "message": "no" } }))
}

async fn requests(server: &MockServer, to: &str) -> Vec<Request> {
    let all = server.received_requests().await.unwrap_or_default();
    all.into_iter().filter(|r| r.url.path() == to).collect()
}

#[tokio::test]
async fn a_task_with_an_uploaded_file_is_created_with_the_key_and_the_file_goes_to_the_presigned_url() {
    let server = MockServer::start().await;
    let upload_url = format!("{}/presigned/f1?sig=abc", server.uri());
    Mock::given(method("POST"))
        .and(path("/v2/file.upload"))
        .and(header("x-manus-api-key", "mk"))
        .and(body_partial_json(json!({ "filename": "cv.pdf" })))
        .respond_with(ok(json!({
            "file": { "id": "file-1", "filename": "cv.pdf", "status": "pending", "created_at": 1 },
            "upload_url": upload_url, "upload_expires_at": 2,
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/presigned/f1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/task.create"))
        .and(header("x-manus-api-key", "mk"))
        .and(body_partial_json(json!({
            "message": { "content": [
                { "type": "text", "text": "Split this mission" },
                { "type": "file", "file_id": "file-1" },
            ]},
            "agent_profile": "manus-1.6",
            "interactive_mode": false,
            "title": "Mission split",
            "structured_output_schema": { "type": "object" },
        })))
        .respond_with(ok(
            json!({ "task_id": "t1", "task_title": "Mission split", "task_url": "https://manus.im/app/t1" }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let manus = client(&server, &clock);
    let file = manus.upload("cv.pdf", b"%PDF-1.7 body".to_vec()).await.expect("upload");
    assert_eq!(file.id, "file-1");
    let task = manus
        .create(&TaskSpec {
            prompt: "Split this mission".into(),
            files: vec![file],
            title: Some("Mission split".into()),
            structured_output_schema: Some(json!({ "type": "object" })),
            ..TaskSpec::default()
        })
        .await
        .expect("create");
    assert_eq!((task.id.as_str(), task.url.as_str()), ("t1", "https://manus.im/app/t1"));
    let put = requests(&server, "/presigned/f1").await;
    assert_eq!(put[0].body, b"%PDF-1.7 body");
    assert!(put[0].headers.get("x-manus-api-key").is_none(), "the presigned PUT carries no Manus key");
}

#[tokio::test]
async fn following_a_task_pages_its_log_reads_only_what_is_new_and_returns_the_result() {
    let server = MockServer::start().await;
    let status = |s: &str| json!({ "type": "status_update", "status_update": { "agent_status": s } });
    let said = |t: &str| {
        json!({ "type": "assistant_message", "assistant_message": {
        "content": t, "attachments": [{ "filename": "plan.md", "url": "https://files/plan.md" }] } })
    };
    // First poll: page one (more to come), then page two, still running.
    Mock::given(path("/v2/task.listMessages"))
        .and(query_param("task_id", "t1"))
        .and(query_param("order", "asc"))
        .and(wiremock::matchers::query_param_is_missing("cursor"))
        .respond_with(ok(json!({ "messages": [status("running"), said("Part one.")], "has_more": true, "next_cursor": "c2" })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/task.listMessages"))
        .and(query_param("cursor", "c2"))
        .respond_with(ok(
            json!({ "messages": [{ "type": "tool_used", "tool_used": {} }], "has_more": false }),
        ))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    // Later polls of the last page see it grow: the answer, the structured output, stopped.
    Mock::given(path("/v2/task.listMessages"))
        .and(query_param("cursor", "c2"))
        .respond_with(ok(json!({ "messages": [
            { "type": "tool_used", "tool_used": {} },
            said("Part two."),
            { "type": "structured_output_result", "structured_output_result": { "success": true, "value": { "steps": 3 } } },
            status("stopped"),
        ], "has_more": false })))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let manus = client(&server, &clock);
    let outcome = manus.wait("t1", Instant::now() + Duration::from_secs(10)).await.expect("wait");
    let Outcome::Finished(result) = outcome else { panic!("finished expected, got {outcome:?}") };
    assert_eq!(result.text, "Part one.\n\nPart two.", "each message once, in order");
    assert_eq!(result.attachments.len(), 2);
    assert_eq!(result.structured, Some(json!({ "steps": 3 })));
    assert!(requests(&server, "/v2/task.listMessages").await.len() >= 4, "it polled until the task stopped");
}

#[tokio::test]
async fn a_waiting_task_returns_its_question_and_the_answer_is_sent_as_a_message() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/task.listMessages"))
        .respond_with(ok(json!({ "messages": [
            { "type": "assistant_message", "assistant_message": { "content": "Which track?" } },
            { "type": "status_update", "status_update": { "agent_status": "waiting", "status_detail": {
                "waiting_for_event_id": "e9", "waiting_for_event_type": "messageAskUser",
                "waiting_description": "Pick a track" } } },
        ], "has_more": false })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/task.sendMessage"))
        .and(body_partial_json(json!({ "task_id": "t1", "message": { "content": "Data engineering" } })))
        .respond_with(ok(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/task.stop"))
        .and(body_partial_json(json!({ "task_id": "t1" })))
        .respond_with(ok(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let manus = client(&server, &clock);
    let Some(Outcome::Waiting { question, so_far }) = manus.result("t1").await.expect("result") else {
        panic!("waiting expected")
    };
    assert!(question.is_ask_user());
    assert_eq!((question.event_id.as_str(), question.description.as_str()), ("e9", "Pick a track"));
    assert_eq!(so_far.text, "Which track?");
    manus.answer("t1", "Data engineering", &[]).await.expect("answer");
    manus.stop("t1").await.expect("stop");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_and_refusals_are_not() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/task.detail"))
        .respond_with(failed(429, "rate_limited"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/task.detail"))
        .respond_with(failed(503, "unavailable"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/task.detail"))
        .respond_with(ok(json!({ "task": { "id": "t1", "status": "stopped", "title": "T",
            "credit_usage": 12.5, "has_running_background_jobs": true } })))
        .mount(&server)
        .await;
    Mock::given(path("/v2/task.create"))
        .respond_with(failed(400, "invalid_argument"))
        .expect(1)
        .mount(&server)
        .await;
    // An error inside a 200 envelope is an error too.
    Mock::given(path("/v2/task.stop")).respond_with(failed(200, "not_found")).expect(1).mount(&server).await;
    let clock = ManualClock::new();
    let manus = client(&server, &clock);
    let detail = manus.detail("t1").await.expect("retried to success");
    assert_eq!(detail.credit_usage, Some(12.5));
    assert!(detail.background_jobs, "stopped with background jobs is not final");
    assert_eq!(requests(&server, "/v2/task.detail").await.len(), 3);
    let refused =
        manus.create(&TaskSpec { prompt: "x".into(), ..TaskSpec::default() }).await.expect_err("an error");
    assert!(matches!(refused, AiError::Refused { .. }), "{refused:?}");
    let stopped = manus.stop("t1").await.expect_err("an error");
    assert!(
        matches!(stopped, AiError::Refused { ref detail, .. } if detail.contains("not_found")),
        "{stopped:?}"
    );
}

#[tokio::test]
async fn an_account_that_stays_rate_limited_fails_as_retryable_after_its_attempts() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/task.create"))
        .respond_with(failed(429, "rate_limited").insert_header("retry-after", "0"))
        .expect(4)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let manus = client(&server, &clock);
    let error =
        manus.create(&TaskSpec { prompt: "x".into(), ..TaskSpec::default() }).await.expect_err("an error");
    assert!(matches!(error, AiError::RateLimited { .. }) && error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn a_create_that_may_have_happened_is_not_sent_again_but_stopping_is() {
    let server = MockServer::start().await;
    // A 503 (or a timeout) may come after Manus made the task: a second create would make a
    // second task and spend its credits.
    Mock::given(path("/v2/task.create")).respond_with(failed(503, "unavailable")).mount(&server).await;
    Mock::given(path("/v2/task.sendMessage")).respond_with(failed(502, "unavailable")).mount(&server).await;
    Mock::given(path("/v2/task.stop"))
        .respond_with(failed(503, "unavailable"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/task.stop")).respond_with(ok(json!({}))).mount(&server).await;
    let clock = ManualClock::new();
    let manus = client(&server, &clock);
    let error =
        manus.create(&TaskSpec { prompt: "x".into(), ..TaskSpec::default() }).await.expect_err("an error");
    assert!(matches!(error, AiError::Unavailable { .. }), "{error:?}");
    assert_eq!(requests(&server, "/v2/task.create").await.len(), 1, "sent once");
    manus.answer("t1", "yes", &[]).await.expect_err("an error");
    assert_eq!(requests(&server, "/v2/task.sendMessage").await.len(), 1, "an answer is not sent twice");
    manus.stop("t1").await.expect("stopping again is safe");
    assert_eq!(requests(&server, "/v2/task.stop").await.len(), 2);
}

/// A locally made Manus key pair: signs like Manus, publishes its key like Manus.
struct Signer {
    key: KeyPair,
}

impl Signer {
    fn new() -> Self {
        Self { key: KeyPair::generate(KeySize::Rsa2048).expect("key") }
    }

    fn pem(&self) -> String {
        let der = self.key.public_key().as_der().expect("der");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> =
            b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }

    fn sign(&self, timestamp: i64, url: &str, body: &[u8]) -> String {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
        let signed = format!("{timestamp}.{url}.{}", hex(hash.as_ref()));
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signed.as_bytes(), &mut signature)
            .expect("sign");
        base64::engine::general_purpose::STANDARD.encode(signature)
    }
}

const HOOK: &str = "https://hooks.example.test/manus/events?tenant=tt";

fn stopped_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": "ev-1", "event_type": "task_stopped",
        "task_detail": { "task_id": "t1", "task_title": "T", "task_url": "u", "message": "Done: 3 steps.",
            "attachments": [{ "file_name": "plan.md", "url": "https://files/plan.md", "size_bytes": 120 }],
            "stop_reason": "finish", "structured_output": { "success": true, "value": { "steps": 3 } } },
    }))
    .expect("json")
}

async fn publishing(server: &MockServer, signer: &Signer) {
    Mock::given(method("GET"))
        .and(path("/v2/webhook.publicKey"))
        .and(header("x-manus-api-key", "mk"))
        .respond_with(ok(json!({ "public_key": signer.pem(), "algorithm": "RSA-SHA256" })))
        .mount(server)
        .await;
}

fn verifier(server: &MockServer, clock: &ManualClock) -> WebhookVerifier {
    let shared: SharedClock = Arc::new(clock.clone());
    WebhookVerifier::new(Box::new(client(server, clock)), HOOK, shared)
}

fn now_s(clock: &ManualClock) -> i64 {
    clock.now_ms() / 1000
}

#[tokio::test]
async fn a_webhook_is_taken_only_when_its_signature_is_right_and_fresh() {
    let server = MockServer::start().await;
    let signer = Signer::new();
    publishing(&server, &signer).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let body = stopped_body();

    // Stale (and far-future) notifications are refused before any key is fetched.
    let old = now_s(&clock) - 301;
    let stale = verifier.verify(&old.to_string(), &signer.sign(old, HOOK, &body), &body).await;
    assert!(matches!(stale, Err(WebhookError::Stale { .. })), "{stale:?}");
    let ahead = now_s(&clock) + 301;
    let future = verifier.verify(&ahead.to_string(), &signer.sign(ahead, HOOK, &body), &body).await;
    assert!(matches!(future, Err(WebhookError::Stale { .. })), "{future:?}");
    assert!(requests(&server, "/v2/webhook.publicKey").await.is_empty());

    let ts = now_s(&clock);
    let event = verifier.verify(&ts.to_string(), &signer.sign(ts, HOOK, &body), &body).await.expect("right");
    assert_eq!((event.event_id.as_str(), event.task_id.as_str()), ("ev-1", "t1"));
    let EventKind::Stopped { reason, message, attachments, structured } = event.kind else {
        panic!("stopped")
    };
    assert_eq!(reason, StopReason::Finish);
    assert_eq!(message, "Done: 3 steps.");
    assert_eq!((attachments[0].filename.as_str(), attachments[0].size_bytes), ("plan.md", Some(120)));
    assert_eq!(structured.map(|s| s.value), Some(json!({ "steps": 3 })));

    // Wrong: another body, another URL, another signer, a changed timestamp.
    let other = br#"{"event_id":"ev-2","event_type":"task_stopped","task_detail":{"task_id":"t2"}}"#;
    let forged = [
        verifier.verify(&ts.to_string(), &signer.sign(ts, HOOK, &body), other).await,
        verifier.verify(&ts.to_string(), &signer.sign(ts, "https://evil.test/", &body), &body).await,
        verifier.verify(&ts.to_string(), &Signer::new().sign(ts, HOOK, &body), &body).await,
        verifier.verify(&(ts - 1).to_string(), &signer.sign(ts, HOOK, &body), &body).await,
        verifier.verify(&ts.to_string(), "not base64!", &body).await,
    ];
    for result in forged {
        assert!(matches!(result, Err(WebhookError::BadSignature)), "{result:?}");
    }
    assert_eq!(requests(&server, "/v2/webhook.publicKey").await.len(), 1, "the key is cached");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_again_but_forgeries_fetch_it_at_most_once_a_minute() {
    let server = MockServer::start().await;
    let old = Signer::new();
    Mock::given(path("/v2/webhook.publicKey"))
        .respond_with(ok(json!({ "public_key": old.pem() })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let new = Signer::new();
    publishing(&server, &new).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let body = stopped_body();
    let ts = now_s(&clock);
    verifier.verify(&ts.to_string(), &old.sign(ts, HOOK, &body), &body).await.expect("old key");
    // Within the minute, a signature by the new key is refused without a fetch.
    let ts = now_s(&clock);
    let early = verifier.verify(&ts.to_string(), &new.sign(ts, HOOK, &body), &body).await;
    assert!(matches!(early, Err(WebhookError::BadSignature)));
    assert_eq!(requests(&server, "/v2/webhook.publicKey").await.len(), 1);
    clock.advance(Duration::from_secs(61));
    let ts = now_s(&clock);
    verifier.verify(&ts.to_string(), &new.sign(ts, HOOK, &body), &body).await.expect("rotated key");
    for _ in 0..5 {
        let ts = now_s(&clock);
        let forged = verifier.verify(&ts.to_string(), &old.sign(ts, HOOK, &body), &body).await;
        assert!(matches!(forged, Err(WebhookError::BadSignature)));
    }
    assert_eq!(requests(&server, "/v2/webhook.publicKey").await.len(), 2, "forgeries did not refetch");
}

#[tokio::test]
async fn the_receiver_queues_each_verified_notification_once_and_refuses_the_rest() {
    let server = MockServer::start().await;
    let signer = Signer::new();
    publishing(&server, &signer).await;
    let clock = ManualClock::new();
    let (sender, mut deliveries) = tokio::sync::mpsc::channel(1);
    let receiver = Arc::new(Receiver::new(verifier(&server, &clock), Cache::memory(1000, "t:"), sender));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let local = format!("http://{}/manus/events", listener.local_addr().expect("addr"));
    let serving = tokio::spawn(receiver.serve(listener));
    let http = reqwest::Client::new();
    let body = stopped_body();
    let post = |ts: i64, signature: String, body: Vec<u8>| {
        http.post(&local)
            .header("x-webhook-timestamp", ts.to_string())
            .header("x-webhook-signature", signature)
            .body(body)
            .send()
    };
    let ts = now_s(&clock);
    let first = post(ts, signer.sign(ts, HOOK, &body), body.clone()).await.expect("post");
    assert_eq!(first.status(), 200);
    let again = post(ts, signer.sign(ts, HOOK, &body), body.clone()).await.expect("post");
    assert_eq!(again.status(), 200, "a repeated delivery is acknowledged");
    let forged = post(ts, Signer::new().sign(ts, HOOK, &body), body.clone()).await.expect("post");
    assert_eq!(forged.status(), 401);
    let stale = post(ts - 600, signer.sign(ts - 600, HOOK, &body), body.clone()).await.expect("post");
    assert_eq!(stale.status(), 401);
    let junk = b"{\"event_id\":1}".to_vec();
    let malformed = post(ts, signer.sign(ts, HOOK, &junk), junk).await.expect("post");
    assert_eq!(malformed.status(), 400);
    let huge = vec![b' '; tt_ai::manus::receiver::MAX_BODY + 1];
    let too_big = post(ts, signer.sign(ts, HOOK, &huge), huge).await.expect("post");
    assert_eq!(too_big.status(), 413);
    assert_eq!(http.get(&local).send().await.expect("get").status(), 405);
    let elsewhere = local.replace("/manus/events", "/other");
    assert_eq!(http.post(&elsewhere).send().await.expect("post").status(), 404);

    // The queue holds one: a second notification is refused for now, and taken when redelivered.
    let second = String::from_utf8(body.clone()).expect("utf-8").replace("ev-1", "ev-2").into_bytes();
    let busy = post(ts, signer.sign(ts, HOOK, &second), second.clone()).await.expect("post");
    assert_eq!(busy.status(), 503);
    let event = deliveries.recv().await.expect("one delivery");
    assert_eq!(event.event_id, "ev-1");
    assert!(deliveries.try_recv().is_err(), "the repeat and the refused were not queued");
    let redelivered = post(ts, signer.sign(ts, HOOK, &second), second).await.expect("post");
    assert_eq!(redelivered.status(), 200);
    assert_eq!(deliveries.recv().await.expect("the redelivery").event_id, "ev-2");
    serving.abort();
}
