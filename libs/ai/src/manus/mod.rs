//! Manus (API v2): an agent platform for the long jobs (mission drafting, task splitting,
//! career research), not a chat-completions endpoint. A task is created with a prompt and
//! files, runs for minutes, may stop to ask a question, and ends with text, attachments and,
//! when a schema was armed, structured output. Chat goes to the chat providers instead.
//!
//! Wire facts are from the research notes (section 1): paths `/v2/<resource>.<action>`, reads
//! are GET with a query string, writes POST JSON; the key goes in `x-manus-api-key`; every
//! answer is an envelope `{ok, request_id, ...}` or `{ok: false, error: {code, message}}`.
//! Requests go through the library's one retry loop with a breaker of their own: 429 and 5xx
//! (and `rate_limited`) are retried with backoff, other 4xx are not. Manus' limits are per
//! account (10 task creations a minute), so a deployment sharing one account queues in front.
//!
//! `webhook.rs` verifies Manus' signed task notifications, `receiver.rs` is a small HTTP
//! endpoint taking them (off unless configured).

pub mod receiver;
pub mod webhook;

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tt_common::clock::SharedClock;

use crate::{
    error::AiError,
    http::{Failure, Http},
    reliable::{Breaker, BreakerPolicy, RetryPolicy, retrying},
};

pub const BASE_URL: &str = "https://api.manus.ai";
/// The provider's name in errors and reports.
pub const PROVIDER: &str = "manus";

#[derive(Debug, Clone)]
pub struct ManusConfig {
    /// `https://api.manus.ai`, without the version.
    pub base_url: String,
    pub api_key: String,
    /// `manus-1.6` (the default), `manus-1.6-lite` or `manus-1.6-max`.
    pub agent_profile: String,
    pub connect_timeout: Duration,
    /// One request, until its answer.
    pub response_timeout: Duration,
    /// Each request's retries (its deadline bounds one request with its retries).
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
    /// Following a task: the first wait between polls, doubled while nothing happens up to
    /// `poll_max`, and back to the first when something did.
    pub poll_first: Duration,
    pub poll_max: Duration,
}

impl ManusConfig {
    pub fn new(api_key: &str) -> Self {
        Self {
            base_url: BASE_URL.to_owned(),
            api_key: api_key.to_owned(),
            agent_profile: "manus-1.6".to_owned(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            retry: RetryPolicy { attempts: 4, deadline: Duration::from_secs(90), ..RetryPolicy::default() },
            breaker: BreakerPolicy::default(),
            poll_first: Duration::from_secs(2),
            poll_max: Duration::from_secs(30),
        }
    }
}

/// An uploaded file, to pass in a task's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub id: String,
    pub filename: String,
}

/// What a task is asked to do.
#[derive(Debug, Clone, Default)]
pub struct TaskSpec {
    pub prompt: String,
    pub files: Vec<FileRef>,
    pub title: Option<String>,
    /// A JSON Schema: the result's structured output follows it.
    pub structured_output_schema: Option<Value>,
    /// Let the agent stop and ask questions (else it does its best without asking).
    pub interactive: bool,
    /// Overrides the configured agent profile.
    pub agent_profile: Option<String>,
    pub locale: Option<String>,
}

/// A created task.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Task {
    #[serde(rename = "task_id")]
    pub id: String,
    #[serde(rename = "task_title", default)]
    pub title: String,
    #[serde(rename = "task_url", default)]
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    Running,
    /// Done (or stopped by a user).
    Stopped,
    /// Waiting for an answer or a confirmation.
    Waiting,
    Error,
    /// A status this client does not know yet.
    Other(String),
}

impl TaskStatus {
    fn parse(status: &str) -> Self {
        match status {
            "running" => Self::Running,
            "stopped" => Self::Stopped,
            "waiting" => Self::Waiting,
            "error" => Self::Error,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// A task's status, without its answer (`task.detail`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDetail {
    pub id: String,
    pub status: TaskStatus,
    pub title: String,
    pub credit_usage: Option<f64>,
    /// Stopped but still working in the background: not final yet.
    pub background_jobs: bool,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub url: String,
    pub size_bytes: Option<u64>,
}

/// The agent stopped to ask: answer with [`Manus::answer`] (for `messageAskUser`) or
/// [`Manus::confirm`] (any other event type, with input following `schema`).
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub event_id: String,
    pub event_type: String,
    pub description: String,
    pub schema: Option<Value>,
}

impl Question {
    /// Whether it is a question in words, answered with a message.
    pub fn is_ask_user(&self) -> bool {
        self.event_type == "messageAskUser"
    }
}

/// One event of a task's log (`task.listMessages`).
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEvent {
    User {
        text: String,
    },
    Assistant {
        text: String,
        attachments: Vec<Attachment>,
    },
    Error {
        message: String,
    },
    Status {
        status: TaskStatus,
        question: Option<Question>,
    },
    StoppedByUser,
    Structured {
        success: bool,
        value: Value,
    },
    /// A kind this client does not read (tool use, plan steps with `verbose`).
    Other {
        kind: String,
    },
}

/// A page of a task's log and the cursor of the next.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    pub events: Vec<TaskEvent>,
    pub next_cursor: Option<String>,
}

/// What a task produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskResult {
    /// The assistant's messages, in order, one paragraph each.
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// The structured output, when a schema was armed and it succeeded.
    pub structured: Option<Value>,
}

/// Where a task stands once it stopped running.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished(TaskResult),
    Waiting { question: Question, so_far: TaskResult },
    Failed { message: String },
}

/// A Manus v2 client.
#[derive(Debug)]
pub struct Manus {
    http: Http,
    config: ManusConfig,
    breaker: Breaker,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(flatten)]
    payload: Value,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default, deserialize_with = "text_or_number")]
    code: String,
    #[serde(default)]
    message: String,
}

fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    })
}

impl Manus {
    pub fn new(config: ManusConfig, clock: SharedClock) -> Result<Self, AiError> {
        let http = Http::new(PROVIDER, config.connect_timeout, config.response_timeout)?;
        let breaker = Breaker::new(config.breaker, clock);
        let mut config = config;
        config.base_url = config.base_url.trim_end_matches('/').to_owned();
        Ok(Self { http, config, breaker })
    }

    /// Uploads `bytes` as `filename` through the presigned-URL flow: `file.upload` names the
    /// file and returns a URL, and the bytes are PUT there (without Manus' key: the URL is
    /// signed) before it expires.
    pub async fn upload(&self, filename: &str, bytes: Vec<u8>) -> Result<FileRef, AiError> {
        #[derive(Deserialize)]
        struct Uploaded {
            file: UploadedFile,
            upload_url: String,
        }
        #[derive(Deserialize)]
        struct UploadedFile {
            id: String,
            #[serde(default)]
            filename: String,
        }
        let uploaded: Uploaded = self.post("file.upload", json!({ "filename": filename })).await?;
        let put = self.http.client.put(&uploaded.upload_url).body(bytes);
        self.http.send(put).await.map_err(|failure| self.failure(failure, "the file upload"))?;
        let name =
            if uploaded.file.filename.is_empty() { filename.to_owned() } else { uploaded.file.filename };
        Ok(FileRef { id: uploaded.file.id, filename: name })
    }

    /// Creates a task.
    pub async fn create(&self, spec: &TaskSpec) -> Result<Task, AiError> {
        let mut body = json!({
            "message": message(&spec.prompt, &spec.files),
            "agent_profile": spec.agent_profile.as_deref().unwrap_or(&self.config.agent_profile),
            "interactive_mode": spec.interactive,
        });
        if let Some(title) = &spec.title {
            body["title"] = json!(title);
        }
        if let Some(locale) = &spec.locale {
            body["locale"] = json!(locale);
        }
        if let Some(schema) = &spec.structured_output_schema {
            body["structured_output_schema"] = schema.clone();
        }
        self.post("task.create", body).await
    }

    /// Answers the agent's question (or sends a follow-up turn).
    pub async fn answer(&self, task_id: &str, text: &str, files: &[FileRef]) -> Result<(), AiError> {
        let body = json!({ "task_id": task_id, "message": message(text, files) });
        self.post::<Value>("task.sendMessage", body).await.map(drop)
    }

    /// Confirms an action the agent waits on, with `input` following the question's schema.
    pub async fn confirm(&self, task_id: &str, event_id: &str, input: Value) -> Result<(), AiError> {
        let body = json!({ "task_id": task_id, "event_id": event_id, "input": input });
        self.post::<Value>("task.confirmAction", body).await.map(drop)
    }

    /// Stops a running task.
    pub async fn stop(&self, task_id: &str) -> Result<(), AiError> {
        self.post_again::<Value>("task.stop", json!({ "task_id": task_id })).await.map(drop)
    }

    /// A task's status.
    pub async fn detail(&self, task_id: &str) -> Result<TaskDetail, AiError> {
        #[derive(Deserialize)]
        struct Detail {
            task: Wire,
        }
        #[derive(Deserialize)]
        struct Wire {
            id: String,
            status: String,
            #[serde(default)]
            title: String,
            #[serde(default)]
            credit_usage: Option<f64>,
            #[serde(default)]
            has_running_background_jobs: Option<bool>,
            #[serde(default)]
            updated_at: Option<i64>,
        }
        let detail: Detail = self.get("task.detail", &[("task_id", task_id)]).await?;
        let task = detail.task;
        Ok(TaskDetail {
            id: task.id,
            status: TaskStatus::parse(&task.status),
            title: task.title,
            credit_usage: task.credit_usage,
            background_jobs: task.has_running_background_jobs.unwrap_or(false),
            updated_at: task.updated_at,
        })
    }

    /// One page of a task's log, oldest first, from `cursor`.
    pub async fn messages(
        &self,
        task_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<MessagePage, AiError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            messages: Vec<Value>,
            #[serde(default)]
            has_more: bool,
            #[serde(default)]
            next_cursor: Option<String>,
        }
        let limit = limit.clamp(1, 200).to_string();
        let mut query = vec![("task_id", task_id), ("order", "asc"), ("limit", limit.as_str())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        let page: Page = self.get("task.listMessages", &query).await?;
        Ok(MessagePage {
            events: page.messages.iter().map(event).collect(),
            next_cursor: page.next_cursor.filter(|_| page.has_more),
        })
    }

    /// Where a task stands now: its log read to the end. `None` while it runs.
    pub async fn result(&self, task_id: &str) -> Result<Option<Outcome>, AiError> {
        Follow::new(task_id).read(self).await
    }

    /// Follows a task until it stops running or `deadline` passes, polling its log with
    /// backoff (each poll reads only what is new). A webhook can replace this: on
    /// `task_stopped`, call [`Manus::result`].
    pub async fn wait(&self, task_id: &str, deadline: Instant) -> Result<Outcome, AiError> {
        let mut follow = Follow::new(task_id);
        let mut pause = self.config.poll_first;
        loop {
            let before = follow.read_events;
            if let Some(outcome) = follow.read(self).await? {
                return Ok(outcome);
            }
            pause = if follow.read_events > before {
                self.config.poll_first
            } else {
                (pause * 2).min(self.config.poll_max)
            };
            if Instant::now() + pause >= deadline {
                return Err(AiError::DeadlineExceeded);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Manus' public key for webhook signatures (PEM).
    pub async fn public_key(&self) -> Result<String, AiError> {
        #[derive(Deserialize)]
        struct Key {
            public_key: String,
        }
        let key: Key = self.get("webhook.publicKey", &[]).await?;
        Ok(key.public_key)
    }

    /// Registers `url` for task notifications; returns the webhook's id.
    pub async fn register_webhook(&self, url: &str) -> Result<String, AiError> {
        #[derive(Deserialize)]
        struct Created {
            webhook: Hook,
        }
        #[derive(Deserialize)]
        struct Hook {
            id: String,
        }
        let created: Created = self.post("webhook.create", json!({ "url": url })).await?;
        Ok(created.webhook.id)
    }

    fn url(&self, action: &str) -> String {
        format!("{}/v2/{action}", self.config.base_url)
    }

    /// A POST that creates or sends something (a task, a message, an upload, a webhook): retried
    /// only when rate limited, since a request that timed out or met a 5xx may have been
    /// carried out, and a second one would create a second task (and spend its credits).
    async fn post<T: serde::de::DeserializeOwned>(&self, action: &str, body: Value) -> Result<T, AiError> {
        let rate_limited = |e: &AiError| matches!(e, AiError::RateLimited { .. });
        self.call(action, rate_limited, || self.http.client.post(self.url(action)).json(&body)).await
    }

    /// A POST that may be repeated safely (stopping a task).
    async fn post_again<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        body: Value,
    ) -> Result<T, AiError> {
        self.call(action, AiError::is_retryable, || self.http.client.post(self.url(action)).json(&body)).await
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        query: &[(&str, &str)],
    ) -> Result<T, AiError> {
        let url = reqwest::Url::parse_with_params(&self.url(action), query)
            .map_err(|e| AiError::Refused { provider: PROVIDER.into(), detail: format!("{action}: {e}") })?;
        self.call(action, AiError::is_retryable, || self.http.client.get(url.clone())).await
    }

    /// One API call through the retry loop: the envelope opened, its error classified.
    async fn call<T, B>(&self, action: &str, retryable: fn(&AiError) -> bool, build: B) -> Result<T, AiError>
    where
        T: serde::de::DeserializeOwned,
        B: Fn() -> reqwest::RequestBuilder,
    {
        let deadline = Instant::now() + self.config.retry.deadline;
        retrying(PROVIDER, &self.breaker, &self.config.retry, deadline, retryable, || async {
            let request = build().header("x-manus-api-key", &self.config.api_key);
            let response = self.http.send(request).await.map_err(|f| self.failure(f, action))?;
            let envelope: Envelope = self.http.json(response, action).await?;
            if envelope.ok == Some(false) || envelope.error.is_some() {
                return Err(classify(200, &envelope.error.unwrap_or_default(), None));
            }
            serde_json::from_value(envelope.payload)
                .map_err(|e| self.http.unavailable(&format!("unreadable {action} answer: {e}"), None))
        })
        .await
    }

    fn failure(&self, failure: Failure, what: &str) -> AiError {
        match failure {
            Failure::Transport(e) => e,
            Failure::Status { status, retry_after, body } => {
                let error =
                    serde_json::from_str::<Envelope>(&body).ok().and_then(|e| e.error).unwrap_or_else(|| {
                        ErrorBody { message: format!("{what}: {}", snippet(&body)), ..Default::default() }
                    });
                classify(status, &error, retry_after)
            }
        }
    }
}

fn snippet(body: &str) -> String {
    body.chars().take(300).collect()
}

/// An HTTP status and Manus' error code, as retryable or not. The status decides first; the
/// code covers errors inside a 200 envelope.
fn classify(status: u16, error: &ErrorBody, retry_after: Option<Duration>) -> AiError {
    let provider = PROVIDER.to_owned();
    let detail = format!("HTTP {status} {}: {}", error.code, error.message);
    match (status, error.code.as_str()) {
        (429, _) | (_, "rate_limited") => AiError::RateLimited { provider, retry_after },
        (500..=599, _) | (_, "internal" | "unavailable") => {
            AiError::Unavailable { provider, detail, retry_after }
        }
        _ => AiError::Refused { provider, detail },
    }
}

/// A message's content: the text, then the files.
fn message(text: &str, files: &[FileRef]) -> Value {
    if files.is_empty() {
        return json!({ "content": text });
    }
    let mut parts = vec![json!({ "type": "text", "text": text })];
    parts.extend(files.iter().map(|f| json!({ "type": "file", "file_id": f.id })));
    json!({ "content": parts })
}

fn text(value: &Value, key: &str) -> String {
    value.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn attachments(value: &Value) -> Vec<Attachment> {
    let list = value.get("attachments").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    list.iter()
        .map(|a| Attachment {
            filename: [text(a, "filename"), text(a, "file_name")].concat(),
            url: text(a, "url"),
            size_bytes: a.get("size_bytes").and_then(Value::as_u64),
        })
        .collect()
}

/// One log event: `{"type": T, T: {...}}`.
fn event(value: &Value) -> TaskEvent {
    let kind = text(value, "type");
    let body = value.get(&kind).unwrap_or(&Value::Null);
    match kind.as_str() {
        "user_message" => TaskEvent::User { text: text(body, "content") },
        "assistant_message" => {
            TaskEvent::Assistant { text: text(body, "content"), attachments: attachments(body) }
        }
        "error_message" => {
            TaskEvent::Error { message: [text(body, "content"), text(body, "message")].concat() }
        }
        "status_update" => {
            let status = TaskStatus::parse(&text(body, "agent_status"));
            let detail = body.get("status_detail").unwrap_or(&Value::Null);
            let question = (status == TaskStatus::Waiting).then(|| Question {
                event_id: text(detail, "waiting_for_event_id"),
                event_type: text(detail, "waiting_for_event_type"),
                description: text(detail, "waiting_description"),
                schema: detail.get("confirm_input_schema").filter(|s| !s.is_null()).cloned(),
            });
            TaskEvent::Status { status, question }
        }
        "user_stop" => TaskEvent::StoppedByUser,
        "structured_output_result" => TaskEvent::Structured {
            success: body.get("success").and_then(Value::as_bool).unwrap_or(false),
            value: body.get("value").cloned().unwrap_or(Value::Null),
        },
        _ => TaskEvent::Other { kind },
    }
}

/// Reading a task's log as it grows: the cursor of the last page and how much of it was read,
/// so the next read fetches that page again and skips what it has seen (the log gives a next
/// cursor only while more pages exist).
struct Follow {
    task_id: String,
    cursor: Option<String>,
    seen_on_page: usize,
    read_events: usize,
    result: TaskResult,
    status: Option<TaskEvent>,
    failure: Option<String>,
}

impl Follow {
    fn new(task_id: &str) -> Self {
        Self {
            task_id: task_id.to_owned(),
            cursor: None,
            seen_on_page: 0,
            read_events: 0,
            result: TaskResult::default(),
            status: None,
            failure: None,
        }
    }

    /// Reads what is new; the outcome once the last status says the task stopped running.
    async fn read(&mut self, manus: &Manus) -> Result<Option<Outcome>, AiError> {
        loop {
            let page = manus.messages(&self.task_id, self.cursor.as_deref(), 100).await?;
            for event in page.events.into_iter().skip(self.seen_on_page) {
                self.take(event);
            }
            match page.next_cursor {
                Some(next) => {
                    self.cursor = Some(next);
                    self.seen_on_page = 0;
                }
                None => break,
            }
        }
        Ok(self.outcome())
    }

    fn take(&mut self, event: TaskEvent) {
        self.seen_on_page += 1;
        self.read_events += 1;
        match event {
            TaskEvent::Assistant { text, attachments } => {
                if !text.is_empty() {
                    if !self.result.text.is_empty() {
                        self.result.text.push_str("\n\n");
                    }
                    self.result.text.push_str(&text);
                }
                self.result.attachments.extend(attachments);
            }
            TaskEvent::Structured { success: true, value } => self.result.structured = Some(value),
            TaskEvent::Error { message } => self.failure = Some(message),
            status @ (TaskEvent::Status { .. } | TaskEvent::StoppedByUser) => self.status = Some(status),
            _ => {}
        }
    }

    fn outcome(&self) -> Option<Outcome> {
        match self.status.as_ref()? {
            TaskEvent::StoppedByUser | TaskEvent::Status { status: TaskStatus::Stopped, .. } => {
                Some(Outcome::Finished(self.result.clone()))
            }
            TaskEvent::Status { status: TaskStatus::Error, .. } => Some(Outcome::Failed {
                message: self.failure.clone().unwrap_or_else(|| "the task failed".to_owned()),
            }),
            TaskEvent::Status { status: TaskStatus::Waiting, question: Some(question) } => {
                Some(Outcome::Waiting { question: question.clone(), so_far: self.result.clone() })
            }
            _ => None,
        }
    }
}
