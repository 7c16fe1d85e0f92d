//! The governed call over the offline provider and a real HTTP endpoint: one report per call
//! whatever its outcome, quotas reserved and settled, refusals costing nothing, moderation of
//! input and output, redaction of what leaves, and a dropped stream settled as cancelled.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, future::BoxFuture};
use tonic::Code;
use tonic_types::StatusExt;
use tt_ai::{
    Ai, AiCall, AiError, AiParts, BreakerPolicy, CALL_ATTRIBUTES, ChatEvent, ChatProvider, ChatRequest,
    Message, Models, Moderator, OfflineChat, OpenAiCompatible, OpenAiConfig, QuotaPolicy, Quotas, Redaction,
    Reliable, Report, RetryPolicy, Tier, Verdict,
};
use tt_common::{
    clock::{ManualClock, SharedClock},
    outbox::schema::AttrKind,
};
use tt_proto::common::v1::{Event, attribute_value::Kind};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::path};

/// Reports kept in memory, and a signal per report.
#[derive(Default)]
struct Kept {
    events: Mutex<Vec<Event>>,
    arrived: tokio::sync::Notify,
}

impl Report for Kept {
    fn report(&self, event: Event) -> BoxFuture<'_, ()> {
        self.events.lock().expect("lock").push(event);
        self.arrived.notify_one();
        Box::pin(async {})
    }
}

impl Kept {
    fn all(&self) -> Vec<Event> {
        self.events.lock().expect("lock").clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Event> {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while self.all().len() < count {
                self.arrived.notified().await;
            }
        });
        waited.await.expect("the report arrived");
        let events = self.all();
        events.iter().for_each(conforms);
        events
    }
}

/// Every reported attribute is declared in `CALL_ATTRIBUTES` with its kind, and every required
/// one is there: what analytics' registry checks, so the library and its declaration never drift.
fn conforms(event: &Event) {
    for (name, value) in &event.attributes {
        let declared = CALL_ATTRIBUTES.iter().find(|a| a.name == name);
        let declared = declared.unwrap_or_else(|| panic!("{name} is reported but not declared"));
        let kind = match value.kind {
            Some(Kind::StringValue(_)) => AttrKind::String,
            Some(Kind::IntValue(_)) => AttrKind::Int,
            Some(Kind::BoolValue(_)) => AttrKind::Bool,
            Some(Kind::DoubleValue(_)) => AttrKind::Double,
            None => panic!("{name} has no value"),
        };
        assert_eq!(kind, declared.kind, "{name}");
    }
    for required in CALL_ATTRIBUTES.iter().filter(|a| a.required) {
        assert!(event.attributes.contains_key(required.name), "{} is required", required.name);
    }
}

fn attrs(event: &Event) -> HashMap<String, String> {
    event
        .attributes
        .iter()
        .map(|(k, v)| {
            let text = match &v.kind {
                Some(Kind::StringValue(s)) => s.clone(),
                Some(Kind::IntValue(i)) => i.to_string(),
                Some(Kind::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (k.clone(), text)
        })
        .collect()
}

/// Flags the `nth` text it is shown (0: the input, 1: the reply), or text holding `word`.
struct Flagging {
    nth: Option<usize>,
    word: Option<&'static str>,
    seen: AtomicUsize,
}

impl Moderator for Flagging {
    fn check<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<Verdict, AiError>> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        let flagged = self.nth == Some(n) || self.word.is_some_and(|w| text.contains(w));
        let verdict = if flagged { Verdict::Flagged(vec!["harassment".into()]) } else { Verdict::Allowed };
        Box::pin(async move { Ok(verdict) })
    }
}

struct Setup {
    ai: Ai,
    quotas: Quotas,
    kept: Arc<Kept>,
}

fn setup(
    chain: Vec<Arc<dyn ChatProvider>>,
    available: &[&str],
    policy: QuotaPolicy,
    moderator: Option<Arc<dyn Moderator>>,
    redaction: Redaction,
) -> Setup {
    setup_with(chain, available, Models::defaults(), policy, moderator, redaction)
}

fn setup_with(
    chain: Vec<Arc<dyn ChatProvider>>,
    available: &[&str],
    models: Models,
    policy: QuotaPolicy,
    moderator: Option<Arc<dyn Moderator>>,
    redaction: Redaction,
) -> Setup {
    let clock: SharedClock = Arc::new(ManualClock::new());
    let cache = tt_testkit::test_cache();
    let retry = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
    let reliable = Arc::new(Reliable::new(chain, retry, BreakerPolicy::default(), Arc::clone(&clock)));
    let kept = Arc::new(Kept::default());
    let quotas = Quotas::new(&cache, Arc::clone(&clock), policy, None);
    let ai = Ai::new(AiParts {
        service: "missions".into(),
        chain: reliable,
        available: available.iter().map(|m| (*m).to_owned()).collect(),
        models,
        quotas: quotas.clone(),
        redaction,
        moderator,
        report: Arc::clone(&kept) as Arc<dyn Report>,
        clock,
    });
    Setup { ai, quotas, kept }
}

fn offline(policy: QuotaPolicy, moderator: Option<Arc<dyn Moderator>>) -> Setup {
    setup(vec![Arc::new(OfflineChat)], &[tt_ai::offline::MODEL], policy, moderator, Redaction::none())
}

fn call() -> AiCall {
    AiCall {
        user: "ann".into(),
        time_zone: "Europe/Paris".into(),
        mentor: Some("m-ada".into()),
        purpose: "mentor_session".into(),
        tier: Tier::Basic,
        deadline: None,
    }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest { messages: vec![Message::user(text)], max_tokens: Some(200), ..ChatRequest::default() }
}

const POLICY: QuotaPolicy = QuotaPolicy { requests_per_minute: 100, daily_tokens: 100_000 };

#[tokio::test]
async fn an_answered_call_is_settled_to_its_usage_and_reported_once() {
    let s = offline(POLICY, None);
    let completion = s.ai.complete(&call(), ask("How do I start in data engineering?")).await.expect("reply");
    assert!(completion.text.starts_with(tt_ai::offline::LABEL), "{}", completion.text);
    let events = s.kept.wait_for(1).await;
    assert_eq!(events.len(), 1);
    let (event, a) = (&events[0], attrs(&events[0]));
    assert_eq!(
        (event.r#type.as_str(), event.subject.as_str(), event.source.as_str()),
        ("missions.ai.called", "ann", "missions")
    );
    assert_eq!(a["outcome"], "answered");
    assert_eq!(
        (a["provider"].as_str(), a["model"].as_str(), a["fallback"].as_str()),
        ("offline", tt_ai::offline::MODEL, "false")
    );
    assert_eq!((a["mentor"].as_str(), a["purpose"].as_str()), ("m-ada", "mentor_session"));
    let used = completion.usage.prompt + completion.usage.completion;
    assert_eq!(a["tokens_in"], completion.usage.prompt.to_string());
    assert_eq!(a["tokens_out"], completion.usage.completion.to_string());
    assert_eq!(
        s.quotas.used_today("ann", "Europe/Paris").await.expect("used"),
        i64::from(used),
        "the reservation settled to the usage"
    );
}

#[tokio::test]
async fn refusals_reach_no_model_cost_nothing_and_are_reported() {
    // The input flagged.
    let flag_input = Arc::new(Flagging { nth: None, word: Some("insult"), seen: AtomicUsize::new(0) });
    let s = offline(POLICY, Some(flag_input));
    let e = s.ai.complete(&call(), ask("write an insult")).await.expect_err("flagged");
    assert_eq!(e.code(), Code::InvalidArgument);
    let bad = e.get_error_details().bad_request().cloned().expect("a BadRequest");
    assert_eq!(bad.field_violations[0].field, "messages");
    // The quota spent: a day of 50 tokens cannot hold a 200-token cap.
    let tight = offline(QuotaPolicy { requests_per_minute: 100, daily_tokens: 50 }, None);
    let q = tight.ai.complete(&call(), ask("hello")).await.expect_err("over quota");
    assert_eq!(q.code(), Code::ResourceExhausted);
    for (setup, outcome) in [(&s, "input_flagged"), (&tight, "quota_refused")] {
        let events = setup.kept.wait_for(1).await;
        let a = attrs(&events[0]);
        assert_eq!(a["outcome"], outcome);
        assert_eq!(
            (a["tokens_in"].as_str(), a["tokens_out"].as_str(), a["cost_micros"].as_str()),
            ("0", "0", "0")
        );
        assert_eq!(setup.quotas.used_today("ann", "Europe/Paris").await.expect("used"), 0);
    }
}

#[tokio::test]
async fn a_flagged_reply_is_withheld_and_reported() {
    let flag_reply = Arc::new(Flagging { nth: Some(1), word: None, seen: AtomicUsize::new(0) });
    let s = offline(POLICY, Some(flag_reply));
    let e = s.ai.complete(&call(), ask("Tell me about mentoring")).await.expect_err("withheld");
    assert_eq!(e.code(), Code::FailedPrecondition);
    let a = attrs(&s.kept.wait_for(1).await[0]);
    assert_eq!(a["outcome"], "output_flagged");
    assert_ne!(a["tokens_out"], "0", "the reply was produced, and paid for");
}

#[tokio::test]
async fn a_dropped_stream_is_settled_with_what_streamed_and_reported_as_cancelled() {
    let s = offline(POLICY, None);
    let mut stream = s.ai.chat(&call(), ask("A long question about careers")).await.expect("stream");
    let Some(Ok(ChatEvent::Delta(_))) = stream.next().await else { panic!("a first delta") };
    drop(stream);
    let a = attrs(&s.kept.wait_for(1).await[0]);
    assert_eq!(a["outcome"], "cancelled");
    let (prompt, out): (i64, i64) =
        (a["tokens_in"].parse().expect("int"), a["tokens_out"].parse().expect("int"));
    assert!(prompt > 0 && out > 0 && out < 200, "{a:?}");
    assert_eq!(
        s.quotas.used_today("ann", "Europe/Paris").await.expect("used"),
        prompt + out,
        "settled, not left at the cap"
    );
}

fn sse(text: &str) -> ResponseTemplate {
    let body = format!(
        "data: {{\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}]}}\n\n\
         data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":1000,\"completion_tokens\":500,\"prompt_tokens_details\":{{\"cached_tokens\":200}}}}}}\n\n\
         data: [DONE]\n\n"
    );
    ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(body)
}

#[tokio::test]
async fn an_external_call_is_redacted_priced_from_the_table_and_falls_back_when_its_endpoint_fails() {
    let server = MockServer::start().await;
    Mock::given(path("/down/chat/completions")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    Mock::given(path("/up/chat/completions")).respond_with(sse("Sure.")).mount(&server).await;
    let endpoint = |name: &str, model: &str| -> Arc<dyn ChatProvider> {
        let config = OpenAiConfig::new(name, &format!("{}/{name}", server.uri()), model);
        Arc::new(OpenAiCompatible::new(config).expect("client"))
    };
    let chain = vec![endpoint("down", "gpt-4o"), endpoint("up", "gpt-4o-mini")];
    let s = setup(chain, &["gpt-4o", "gpt-4o-mini"], POLICY, None, Redaction::default());
    let completion = s.ai.complete(&call(), ask("Mail me at ann@example.com")).await.expect("reply");
    assert!(completion.fallback);
    let sent = server.received_requests().await.unwrap_or_default();
    let bodies: Vec<String> = sent.iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    assert!(bodies.iter().all(|b| !b.contains("ann@example.com")), "redacted before leaving: {bodies:?}");
    let a = attrs(&s.kept.wait_for(1).await[0]);
    assert_eq!(
        (a["provider"].as_str(), a["model"].as_str(), a["fallback"].as_str()),
        ("up", "gpt-4o-mini", "true")
    );
    assert_eq!(a["redactions"], "1");
    let models = Models::defaults();
    let expected = models.cost_micros("gpt-4o-mini", &completion.usage).expect("priced");
    assert!(expected > 0);
    assert_eq!(a["cost_micros"], expected.to_string());
    assert_eq!(
        (a["tokens_in"].as_str(), a["tokens_out"].as_str(), a["tokens_cached"].as_str()),
        ("1000", "500", "200")
    );
}

fn openai(server: &MockServer, model: &str) -> Vec<Arc<dyn ChatProvider>> {
    let config = OpenAiConfig::new("openai", &server.uri(), model);
    vec![Arc::new(OpenAiCompatible::new(config).expect("client"))]
}

#[tokio::test]
async fn a_model_with_a_tokenizer_reserves_its_exact_count() {
    let server = MockServer::start().await;
    Mock::given(path("/chat/completions")).respond_with(sse("Sure.")).mount(&server).await;
    // "hello world" is 2 tokens in o200k, framed as one message: 3 + 4 + 2; the estimate says 3
    // for the two words. With the 200-token cap, the exact need is 209 and the estimate 210.
    let day = QuotaPolicy { requests_per_minute: 100, daily_tokens: 209 };
    let s = setup(openai(&server, "gpt-4o-mini"), &["gpt-4o-mini"], day, None, Redaction::none());
    let stream = s.ai.chat(&call(), ask("hello world")).await.expect("the exact count fits");
    assert_eq!(s.quotas.used_today("ann", "Europe/Paris").await.expect("used"), 209, "reserved exactly");
    drop(stream);
    // The offline model has no tokenizer: its estimate does not fit the same day.
    let estimated = offline(day, None);
    let e = estimated.ai.complete(&call(), ask("hello world")).await.expect_err("the estimate does not fit");
    assert_eq!(e.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn a_prompt_the_estimate_undercounts_is_sent_to_a_model_whose_window_holds_it() {
    let server = MockServer::start().await;
    Mock::given(path("/chat/completions")).respond_with(sse("好的。")).mount(&server).await;
    let window = |name: &str, context: u32, input: f64| {
        format!(
            "[model.{name}]\ninput = {input}\ncached_input = 0.0\noutput = 1.0\ncontext = {context}\n\
             tier = \"basic\"\ntokenizer = \"o200k_base\"\n"
        )
    };
    let table = format!("{}{}", window("small", 2_000, 0.1), window("large", 100_000, 1.0));
    let models = Models::defaults().with_overrides(&table).expect("table");
    let s =
        setup_with(openai(&server, "small"), &["small", "large"], models, POLICY, None, Redaction::none());
    // Chinese without spaces: a quarter token per character by the estimate, about one exactly.
    let text = "我想从客户支持转到数据工程需要学习哪些技能".repeat(200);
    let tokens = tt_ai::tokens::Tokenizer::O200kBase.count(&text);
    assert!(
        tt_ai::tokens::estimate(&text) + 207 < 2_000 && tokens + 207 > 2_000,
        "the estimate fits the small window, the count does not: {tokens}"
    );
    let completion = s.ai.complete(&call(), ask(&text)).await.expect("reply");
    let sent = server.received_requests().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).expect("json");
    assert_eq!(body["model"], "large", "chosen for the exact count");
    assert_eq!(completion.text, "好的。");
}

#[tokio::test]
async fn a_caller_who_leaves_while_the_model_thinks_pays_for_the_prompt_and_a_failure_costs_nothing() {
    let server = MockServer::start().await;
    Mock::given(path("/slow/chat/completions"))
        .respond_with(sse("Late.").set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    Mock::given(path("/down/chat/completions")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let endpoint = |name: &str| -> Vec<Arc<dyn ChatProvider>> {
        let config = OpenAiConfig::new(name, &format!("{}/{name}", server.uri()), "gpt-4o-mini");
        vec![Arc::new(OpenAiCompatible::new(config).expect("client"))]
    };
    let slow = Arc::new(setup(endpoint("slow"), &["gpt-4o-mini"], POLICY, None, Redaction::none()));
    let caller = {
        let slow = Arc::clone(&slow);
        tokio::spawn(async move { slow.ai.chat(&call(), ask("hello world")).await.map(drop) })
    };
    // The caller gives up once the request reached the model, before its first byte.
    while server.received_requests().await.unwrap_or_default().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    caller.abort();
    assert!(caller.await.is_err_and(|e| e.is_cancelled()));
    let a = attrs(&slow.kept.wait_for(1).await[0]);
    assert_eq!(a["outcome"], "cancelled");
    assert_eq!(a["tokens_in"], "9", "the prompt went out: 3 + 4 + 2 tokens");
    assert_eq!(slow.quotas.used_today("ann", "Europe/Paris").await.expect("used"), 9);
    // A model that failed before replying produced nothing.
    let down = setup(endpoint("down"), &["gpt-4o-mini"], POLICY, None, Redaction::none());
    let e = down.ai.complete(&call(), ask("hello world")).await.expect_err("unavailable");
    assert_eq!(e.code(), Code::Unavailable);
    let a = attrs(&down.kept.wait_for(1).await[0]);
    assert_eq!(
        (a["outcome"].as_str(), a["tokens_in"].as_str(), a["cost_micros"].as_str()),
        ("failed", "0", "0")
    );
    assert_eq!(down.quotas.used_today("ann", "Europe/Paris").await.expect("used"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_parallel_calls_of_one_learner_stay_within_the_quota_and_refusals_cost_nothing() {
    // Each call reserves its prompt plus the 200-token cap, about 210 (3,000 tokens hold 14 at
    // once), and settles to what it used, which frees the rest for later calls.
    let day = QuotaPolicy { requests_per_minute: 1000, daily_tokens: 3000 };
    let s = Arc::new(offline(day, None));
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(
                async move { s.ai.complete(&call(), ask(&format!("Question {i} on careers"))).await },
            )
        })
        .collect();
    let mut answered = 0;
    for call in calls {
        match call.await.expect("joined") {
            Ok(_) => answered += 1,
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}"),
        }
    }
    assert!((14..64).contains(&answered), "at least what the day holds at once, not all: {answered}");
    let events = s.kept.wait_for(64).await;
    let used = s.quotas.used_today("ann", "Europe/Paris").await.expect("used");
    let reported: i64 = events
        .iter()
        .map(attrs)
        .map(|a| a["tokens_in"].parse::<i64>().expect("int") + a["tokens_out"].parse::<i64>().expect("int"))
        .sum();
    assert!(used <= 3000, "never past the day: {used}");
    assert_eq!(used, reported, "the count is what the calls reported");
    let refused = events.iter().map(attrs).filter(|a| a["outcome"] == "quota_refused").count();
    assert_eq!(refused, 64 - answered);
}
