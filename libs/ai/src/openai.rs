//! Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, a LiteLLM proxy): chat completions
//! streamed over server-sent events, and embeddings.
//!
//! The parser is tolerant where the servers differ (research notes, section 2): comments and
//! keep-alives are skipped, a chunk with no choices may carry the usage (asked for with
//! `stream_options.include_usage`), a missing `[DONE]` after a finish reason is accepted, error
//! bodies may be nested or flat with a string or integer `code`, and an error may arrive inside
//! a 200 stream. A stream that ends with neither `[DONE]` nor a finish reason failed; one that
//! sends nothing for the stall time fails with [`AiError::Stalled`]. Without reported usage the
//! completion carries an estimate, marked as such.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt, future::BoxFuture};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    chat::{ChatEvent, ChatProvider, ChatRequest, ChatStream, Completion, FinishReason, Role, Usage},
    embed::Embedder,
    error::AiError,
    http::{Failure, Http},
    tokens::{estimate, estimate_messages},
};

/// One endpoint and model.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The provider's name in reports and errors (`openai`, `vllm-eu`, ...).
    pub name: String,
    /// Up to and including the version: `https://api.openai.com/v1`, `http://localhost:11434/v1`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer`; none for a local server without keys.
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    /// Until the response headers arrive.
    pub response_timeout: Duration,
    /// The longest silence inside a stream.
    pub stall: Duration,
}

impl OpenAiConfig {
    pub fn new(name: &str, base_url: &str, model: &str) -> Self {
        Self {
            name: name.to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            stall: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
pub struct OpenAiCompatible {
    http: Http,
    config: OpenAiConfig,
}

impl std::fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("name", &self.config.name)
            .field("base_url", &self.config.base_url)
            .field("model", &self.config.model)
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatible {
    pub fn new(config: OpenAiConfig) -> Result<Self, AiError> {
        let http = Http::new(&config.name, config.connect_timeout, config.response_timeout)?;
        Ok(Self { http, config })
    }

    /// Embeddings from `model` on the same endpoint, of `dimension` values each.
    pub fn embedder(&self, model: &str, dimension: usize) -> OpenAiEmbedder {
        OpenAiEmbedder { client: self.with_model(model), dimension }
    }

    /// Moderation by `model` (`omni-moderation-latest` on OpenAI) on the same endpoint.
    pub fn moderator(&self, model: &str) -> OpenAiModerator {
        OpenAiModerator { client: self.with_model(model) }
    }

    fn with_model(&self, model: &str) -> Self {
        let mut client = self.clone();
        client.config.model = model.to_owned();
        client
    }

    /// Posts `body` and reads the JSON answer (`what` names it in errors).
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
        what: &str,
    ) -> Result<T, AiError> {
        let response = self.send(path, body).await?;
        self.http.json(response, what).await
    }

    /// Posts `body` and waits for the response headers: a status outside 2xx is the error it
    /// describes.
    async fn send(&self, path: &str, body: &Value) -> Result<reqwest::Response, AiError> {
        let mut request = self.http.client.post(format!("{}/{path}", self.config.base_url)).json(body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        self.http.send(request).await.map_err(|failure| match failure {
            Failure::Status { status, retry_after, body } => self.classify(status, &body, retry_after),
            Failure::Transport(e) => e,
        })
    }

    /// The error an HTTP status and its body describe.
    fn classify(&self, status: u16, body: &str, retry_after: Option<Duration>) -> AiError {
        let error = ErrorBody::parse(body);
        let provider = self.config.name.clone();
        let detail = format!("HTTP {status}: {}", error.message);
        if error.is("insufficient_quota") {
            // The account is out of credit: waiting does not help.
            return AiError::Refused { provider, detail };
        }
        if error.is("context_length_exceeded") || error.message.contains("maximum context length") {
            return AiError::ContextLength { model: self.config.model.clone() };
        }
        match status {
            429 => AiError::RateLimited { provider, retry_after },
            500..=599 => AiError::Unavailable { provider, detail, retry_after },
            _ => AiError::Refused { provider, detail },
        }
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request
            .prompt()
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({ "role": role, "content": m.content })
            })
            .collect();
        let mut body = json!({
            "model": request.model.as_deref().unwrap_or(&self.config.model),
            "messages": messages,
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        if let Some(max) = request.max_tokens {
            body["max_tokens"] = json!(max);
        }
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if request.json {
            body["response_format"] = json!({ "type": "json_object" });
        }
        body
    }
}

/// An error body in any of the shapes the servers send.
#[derive(Debug, Default)]
struct ErrorBody {
    message: String,
    kind: String,
    code: String,
}

impl ErrorBody {
    fn parse(body: &str) -> Self {
        match serde_json::from_str::<Value>(body) {
            Ok(value) => Self::of(&value),
            Err(_) => Self { message: body.chars().take(300).collect(), ..Self::default() },
        }
    }

    /// From a parsed body: `{"error": {...}}` or the error object itself (flat bodies).
    fn of(value: &Value) -> Self {
        let error = value.get("error").filter(|e| e.is_object()).unwrap_or(value);
        let text = |key: &str| match error.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        Self { message: text("message"), kind: text("type"), code: text("code") }
    }

    fn is(&self, name: &str) -> bool {
        self.code == name || self.kind == name
    }
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u32,
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// What a stream has said so far.
struct Reading {
    provider: String,
    model: String,
    prompt_estimate: u32,
    text: String,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    stall: Duration,
    done: bool,
}

impl Reading {
    fn completion(&mut self) -> Completion {
        let usage = self.usage.unwrap_or(Usage {
            prompt: self.prompt_estimate,
            completion: estimate(&self.text),
            cached: 0,
            estimated: true,
        });
        Completion {
            text: std::mem::take(&mut self.text),
            finish: self.finish.unwrap_or(FinishReason::Stop),
            usage,
            provider: self.provider.clone(),
            model: self.model.clone(),
            fallback: false,
        }
    }

    /// What one SSE data field adds: a delta, the end, an error, or nothing (usage, roles).
    fn take(&mut self, data: &str) -> Option<Result<ChatEvent, AiError>> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Some(Ok(ChatEvent::Done(self.completion())));
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::debug!(provider = %self.provider, error = %e, "skipping an unreadable stream chunk");
                return None;
            }
        };
        if let Some(error) = chunk.error {
            let body = ErrorBody::of(&error);
            self.done = true;
            return Some(Err(AiError::Unavailable {
                provider: self.provider.clone(),
                detail: format!("error inside the stream: {}", body.message),
                retry_after: None,
            }));
        }
        if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
            self.model = model;
        }
        if let Some(u) = chunk.usage {
            let cached = u.prompt_tokens_details.map_or(0, |d| d.cached_tokens);
            self.usage = Some(Usage {
                prompt: u.prompt_tokens,
                completion: u.completion_tokens,
                cached,
                estimated: false,
            });
        }
        let choice = chunk.choices.into_iter().next()?;
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(finish_reason(&reason));
        }
        let content = choice.delta.content.filter(|c| !c.is_empty())?;
        self.text.push_str(&content);
        Some(Ok(ChatEvent::Delta(content)))
    }
}

/// The chat events of an SSE body.
fn events<S, B, E>(body: S, reading: Reading) -> ChatStream
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let sse = Box::pin(body).eventsource();
    futures::stream::unfold((sse, reading), |(mut sse, mut reading)| async move {
        loop {
            if reading.done {
                return None;
            }
            let item = match tokio::time::timeout(reading.stall, sse.next()).await {
                Err(_) => {
                    reading.done = true;
                    Some(Err(AiError::Stalled { provider: reading.provider.clone(), after: reading.stall }))
                }
                // Servers that skip `[DONE]` still send a finish reason.
                Ok(None) if reading.finish.is_some() => {
                    reading.done = true;
                    Some(Ok(ChatEvent::Done(reading.completion())))
                }
                Ok(None) => {
                    reading.done = true;
                    Some(Err(AiError::Truncated { provider: reading.provider.clone() }))
                }
                Ok(Some(Err(e))) => {
                    reading.done = true;
                    Some(Err(AiError::Unavailable {
                        provider: reading.provider.clone(),
                        detail: format!("the stream broke: {e}"),
                        retry_after: None,
                    }))
                }
                Ok(Some(Ok(event))) => reading.take(&event.data),
            };
            if let Some(item) = item {
                return Some((item, (sse, reading)));
            }
        }
    })
    .boxed()
}

impl ChatProvider for OpenAiCompatible {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream, AiError>> {
        Box::pin(async move {
            let body = self.body(&request);
            let response = self.send("chat/completions", &body).await?;
            let reading = Reading {
                provider: self.config.name.clone(),
                model: request.model.clone().unwrap_or_else(|| self.config.model.clone()),
                prompt_estimate: estimate_messages(&request.prompt()),
                text: String::new(),
                finish: None,
                usage: None,
                stall: self.config.stall,
                done: false,
            };
            Ok(events(response.bytes_stream(), reading))
        })
    }
}

/// An OpenAI-compatible `/embeddings` endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    client: OpenAiCompatible,
    dimension: usize,
}

#[derive(Debug, Deserialize)]
struct EmbeddingList {
    data: Vec<EmbeddingItem>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    index: usize,
}

impl OpenAiEmbedder {
    async fn fetch(&self, inputs: Vec<String>) -> Result<Vec<Vec<f32>>, AiError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let config = &self.client.config;
        let count = inputs.len();
        let body = json!({ "model": config.model, "input": inputs, "encoding_format": "float" });
        let list: EmbeddingList = self.client.call("embeddings", &body, "embeddings").await?;
        // Servers need not keep the input order: `index` says which input a vector is for.
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; count];
        for item in list.data {
            if item.embedding.len() != self.dimension {
                return Err(AiError::Refused {
                    provider: config.name.clone(),
                    detail: format!(
                        "{} returned {}-dimensional vectors, {} configured",
                        config.model,
                        item.embedding.len(),
                        self.dimension
                    ),
                });
            }
            if let Some(slot) = vectors.get_mut(item.index) {
                *slot = Some(item.embedding);
            }
        }
        vectors.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| {
            self.client.http.unavailable(&format!("fewer than {count} embeddings came back"), None)
        })
    }
}

impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.client.config.model
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, inputs: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, AiError>> {
        Box::pin(self.fetch(inputs))
    }
}

/// An OpenAI-compatible `/moderations` endpoint as a [`Moderator`](crate::safety::Moderator).
#[derive(Debug, Clone)]
pub struct OpenAiModerator {
    client: OpenAiCompatible,
}

#[derive(Debug, Deserialize)]
struct ModerationList {
    results: Vec<ModerationResult>,
}

#[derive(Debug, Deserialize)]
struct ModerationResult {
    flagged: bool,
    #[serde(default)]
    categories: std::collections::BTreeMap<String, bool>,
}

impl OpenAiModerator {
    async fn verdict(&self, text: &str) -> Result<crate::safety::Verdict, AiError> {
        let body = json!({ "model": self.client.config.model, "input": text });
        let list: ModerationList = self.client.call("moderations", &body, "moderation").await?;
        let flagged: Vec<String> = list
            .results
            .iter()
            .filter(|r| r.flagged)
            .flat_map(|r| r.categories.iter().filter(|(_, on)| **on).map(|(c, _)| c.clone()))
            .collect();
        Ok(if list.results.iter().any(|r| r.flagged) {
            crate::safety::Verdict::Flagged(if flagged.is_empty() { vec!["flagged".into()] } else { flagged })
        } else {
            crate::safety::Verdict::Allowed
        })
    }
}

impl crate::safety::Moderator for OpenAiModerator {
    fn check<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<crate::safety::Verdict, AiError>> {
        Box::pin(self.verdict(text))
    }
}
