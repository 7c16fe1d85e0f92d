//! The library's settings: one set per process (a binary flattens [`AiArgs`] once; every
//! module that calls models opens its [`Ai`] from it). The default is the offline provider:
//! nothing leaves the process and nothing needs a key.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::{ArgAction, Args, ValueEnum};
use tt_common::{
    cache::Cache,
    client::Peer,
    clock::SharedClock,
    config::{ConfigError, HumanDuration, Validate, inline_or_file},
};

use crate::{
    chat::ChatProvider,
    embed::Embedder,
    governed::{Ai, AiParts, Report},
    manus::{Manus, ManusConfig},
    models::Models,
    offline::{self, LexicalEmbedder, OfflineChat},
    openai::{OpenAiCompatible, OpenAiConfig},
    quota::{IdentityLimits, Limits, QuotaPolicy, Quotas},
    reliable::{BreakerPolicy, Reliable, ReliableEmbedder, RetryPolicy},
    safety::{Moderator, Redaction, TermList},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// Deterministic replies labelled as not a language model; nothing leaves the process.
    Offline,
    /// An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, a LiteLLM proxy).
    Openai,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModerationKind {
    Off,
    /// The configured blocked terms (`--ai-blocked-terms`).
    Terms,
    /// The endpoint's `/moderations` (`--ai-moderation-model`).
    Endpoint,
}

/// How the process talks to models.
#[derive(Debug, Clone, Args)]
pub struct AiArgs {
    #[arg(long, env = "TT_AI_PROVIDER", value_enum, default_value = "offline")]
    pub ai_provider: ProviderKind,
    /// The OpenAI-compatible endpoint up to its version (`https://api.openai.com/v1`).
    #[arg(long, env = "TT_AI_BASE_URL", default_value = "")]
    pub ai_base_url: String,
    /// The endpoint's default model.
    #[arg(long, env = "TT_AI_MODEL", default_value = "gpt-4o-mini")]
    pub ai_model: String,
    /// Further models the endpoint serves, to choose the cheapest that fits a request.
    #[arg(long, env = "TT_AI_MODELS", value_delimiter = ',')]
    pub ai_models: Vec<String>,
    /// The fallback chain after the endpoint, in order: `model@base_url`, same key.
    #[arg(long, env = "TT_AI_FALLBACKS", value_delimiter = ',')]
    pub ai_fallbacks: Vec<String>,
    /// The endpoint's key; empty for keyless servers (vLLM, Ollama).
    #[arg(long, env = "TT_AI_API_KEY", default_value = "", hide_env_values = true)]
    pub ai_api_key: String,
    /// A file holding the key (a mounted Secret); takes the place of the value above.
    #[arg(long, env = "TT_AI_API_KEY_FILE")]
    pub ai_api_key_file: Option<PathBuf>,
    /// Prices, context windows and tiers overriding or adding to the shipped table (TOML).
    #[arg(long, env = "TT_AI_MODELS_FILE")]
    pub ai_models_file: Option<PathBuf>,
    /// The endpoint's embedding model (matching by meaning).
    #[arg(long, env = "TT_AI_EMBEDDING_MODEL", default_value = "text-embedding-3-small")]
    pub ai_embedding_model: String,
    /// The length of that model's vectors (checked on every answer).
    #[arg(long, env = "TT_AI_EMBEDDING_DIMENSIONS", default_value_t = 1536)]
    pub ai_embedding_dimensions: usize,
    /// Count the tokens of models with a shipped tokenizer exactly (o200k: about 45 MiB, loaded
    /// at start when the endpoint serves such a model); off, every count is an estimate.
    #[arg(long, env = "TT_AI_TOKENIZERS", default_value_t = true, action = ArgAction::Set)]
    pub ai_tokenizers: bool,
    /// One call's whole time, retries and fallbacks included (the caller's deadline may cut it).
    #[arg(long, env = "TT_AI_DEADLINE", default_value = "120s")]
    pub ai_deadline: HumanDuration,
    /// The longest silence inside a streamed reply.
    #[arg(long, env = "TT_AI_STALL", default_value = "30s")]
    pub ai_stall: HumanDuration,
    /// Tries per endpoint, the first included.
    #[arg(long, env = "TT_AI_ATTEMPTS", default_value_t = 3)]
    pub ai_attempts: u32,
    /// Model calls per learner per minute, across every service.
    #[arg(long, env = "TT_AI_REQUESTS_PER_MINUTE", default_value_t = 20)]
    pub ai_requests_per_minute: u32,
    /// The daily token quota when identity cannot be asked (no identity peer configured).
    #[arg(long, env = "TT_AI_DAILY_TOKENS", default_value_t = 100_000)]
    pub ai_daily_tokens: i64,
    /// How long a learner's quota read from identity is kept (identity invalidates it on change).
    #[arg(long, env = "TT_AI_LIMITS_TTL", default_value = "60s")]
    pub ai_limits_ttl: HumanDuration,
    /// Redact emails, phone numbers, keys and tokens from what goes to an external provider.
    #[arg(long, env = "TT_AI_REDACTION", default_value_t = true, action = ArgAction::Set)]
    pub ai_redaction: bool,
    #[arg(long, env = "TT_AI_MODERATION", value_enum, default_value = "terms")]
    pub ai_moderation: ModerationKind,
    #[arg(long, env = "TT_AI_MODERATION_MODEL", default_value = "omni-moderation-latest")]
    pub ai_moderation_model: String,
    /// Blocked terms as `category:term` or `term`, comma-separated.
    #[arg(long, env = "TT_AI_BLOCKED_TERMS", value_delimiter = ',')]
    pub ai_blocked_terms: Vec<String>,
    /// Manus' API (agent tasks), without the version.
    #[arg(long, env = "TT_MANUS_BASE_URL", default_value = crate::manus::BASE_URL)]
    pub manus_base_url: String,
    /// Manus' API key; without one there are no agent tasks.
    #[arg(long, env = "TT_MANUS_API_KEY", default_value = "", hide_env_values = true)]
    pub manus_api_key: String,
    /// A file holding the Manus key (a mounted Secret); takes the place of the value above.
    #[arg(long, env = "TT_MANUS_API_KEY_FILE")]
    pub manus_api_key_file: Option<PathBuf>,
    #[arg(long, env = "TT_MANUS_AGENT_PROFILE", default_value = "manus-1.6")]
    pub manus_agent_profile: String,
    /// Where to take Manus' task notifications (`0.0.0.0:8090`); unset: off, tasks are polled.
    #[arg(long, env = "TT_MANUS_WEBHOOK_LISTEN")]
    pub manus_webhook_listen: Option<SocketAddr>,
    /// The public URL registered with Manus for notifications (what Manus signs).
    #[arg(long, env = "TT_MANUS_WEBHOOK_URL", default_value = "")]
    pub manus_webhook_url: String,
}

impl Validate for AiArgs {
    fn validate(&self) -> Result<(), ConfigError> {
        let http = |s: &str| s.starts_with("http://") || s.starts_with("https://");
        if self.ai_provider == ProviderKind::Openai && !http(&self.ai_base_url) {
            return Err(ConfigError::new(
                "TT_AI_BASE_URL",
                "must be an http(s) URL when TT_AI_PROVIDER=openai",
            ));
        }
        if let Some(bad) = self
            .ai_fallbacks
            .iter()
            .find(|f| !f.split_once('@').is_some_and(|(m, u)| !m.is_empty() && http(u)))
        {
            return Err(ConfigError::new("TT_AI_FALLBACKS", format!("{bad:?} is not model@http(s)://url")));
        }
        if self.ai_embedding_dimensions == 0 || self.ai_embedding_dimensions > 8192 {
            return Err(ConfigError::new("TT_AI_EMBEDDING_DIMENSIONS", "must be 1 to 8192"));
        }
        if self.ai_attempts == 0 || self.ai_attempts > 10 {
            return Err(ConfigError::new("TT_AI_ATTEMPTS", "must be 1 to 10"));
        }
        if self.ai_requests_per_minute == 0 || self.ai_daily_tokens < 0 {
            return Err(ConfigError::new("TT_AI_REQUESTS_PER_MINUTE", "quotas must be positive"));
        }
        if self.ai_deadline.0 < Duration::from_secs(1) || self.ai_stall.0 < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "TT_AI_DEADLINE",
                "the deadline must be at least 1s and the stall 100ms",
            ));
        }
        if self.ai_moderation == ModerationKind::Endpoint && self.ai_provider == ProviderKind::Offline {
            return Err(ConfigError::new(
                "TT_AI_MODERATION",
                "endpoint moderation needs TT_AI_PROVIDER=openai",
            ));
        }
        if self.manus_webhook_listen.is_some() && !self.manus_webhook_url.starts_with("https://") {
            return Err(ConfigError::new(
                "TT_MANUS_WEBHOOK_URL",
                "the public https:// URL registered with Manus is required when the receiver listens",
            ));
        }
        if !http(&self.manus_base_url) {
            return Err(ConfigError::new("TT_MANUS_BASE_URL", "must be an http(s) URL"));
        }
        Ok(())
    }
}

/// What a module brings to open its [`Ai`].
pub struct Opening<'a> {
    /// The module's name: its reports are `<service>.ai.called`.
    pub service: &'a str,
    /// The platform cache, unscoped: quotas are counted across services.
    pub cache: &'a Cache,
    /// Identity with the module's service token, for learners' own quotas.
    pub identity: Option<Peer>,
    pub report: Arc<dyn Report>,
    pub clock: SharedClock,
}

impl AiArgs {
    /// The governed chat for `opening.service`.
    pub fn open(&self, opening: Opening<'_>) -> Result<Ai, ConfigError> {
        let mut models = Models::defaults();
        if let Some(path) = &self.ai_models_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new("TT_AI_MODELS_FILE", format!("{}: {e}", path.display())))?;
            models = models
                .with_overrides(&text)
                .map_err(|e| ConfigError::new("TT_AI_MODELS_FILE", e.to_string()))?;
        }
        if !self.ai_tokenizers {
            models = models.estimated();
        }
        let key = self.key()?;
        let endpoint = |name: &str, base: &str, model: &str| self.endpoint(key.clone(), name, base, model);
        let (chain, available, external): (
            Vec<Arc<dyn ChatProvider>>,
            Vec<String>,
            Option<OpenAiCompatible>,
        ) = match self.ai_provider {
            ProviderKind::Offline => (vec![Arc::new(OfflineChat)], vec![offline::MODEL.to_owned()], None),
            ProviderKind::Openai => {
                let first = endpoint("openai", &self.ai_base_url, &self.ai_model)?;
                let mut chain: Vec<Arc<dyn ChatProvider>> = vec![Arc::new(first.clone())];
                for (i, fallback) in self.ai_fallbacks.iter().enumerate() {
                    let (model, base) = fallback.split_once('@').unwrap_or((fallback, ""));
                    chain.push(Arc::new(endpoint(&format!("fallback-{}", i + 1), base, model)?));
                }
                let mut available = vec![self.ai_model.clone()];
                available.extend(self.ai_models.iter().filter(|m| **m != self.ai_model).cloned());
                (chain, available, Some(first))
            }
        };
        let (retry, breaker) = self.policies();
        let reliable = Arc::new(Reliable::new(chain, retry, breaker, Arc::clone(&opening.clock)));
        let moderator: Option<Arc<dyn Moderator>> = match (self.ai_moderation, &external) {
            (ModerationKind::Off, _) => None,
            (ModerationKind::Terms, _) => {
                let terms: Vec<&str> = self.ai_blocked_terms.iter().map(String::as_str).collect();
                Some(Arc::new(TermList::new(&terms)))
            }
            (ModerationKind::Endpoint, Some(client)) => {
                Some(Arc::new(client.moderator(&self.ai_moderation_model)))
            }
            (ModerationKind::Endpoint, None) => {
                return Err(ConfigError::new(
                    "TT_AI_MODERATION",
                    "endpoint moderation needs TT_AI_PROVIDER=openai",
                ));
            }
        };
        let limits = opening.identity.map(|peer| {
            Arc::new(IdentityLimits::new(peer, opening.cache, self.ai_limits_ttl.0)) as Arc<dyn Limits>
        });
        let policy = QuotaPolicy {
            requests_per_minute: self.ai_requests_per_minute,
            daily_tokens: self.ai_daily_tokens,
        };
        let quotas = Quotas::new(opening.cache, Arc::clone(&opening.clock), policy, limits);
        // Nothing leaves the process offline, so there is nothing to redact.
        let redaction =
            if self.ai_redaction && external.is_some() { Redaction::default() } else { Redaction::none() };
        Ok(Ai::new(AiParts {
            service: opening.service.to_owned(),
            chain: reliable,
            available,
            models,
            quotas,
            redaction,
            moderator,
            report: opening.report,
            clock: opening.clock,
        }))
    }

    /// The embedder: the offline lexical one, or the endpoint's embedding model behind the same
    /// retry loop and a breaker of its own, its inputs redacted like chat's.
    pub fn embedder(&self, clock: SharedClock) -> Result<Arc<dyn Embedder>, ConfigError> {
        if self.ai_provider == ProviderKind::Offline {
            return Ok(Arc::new(LexicalEmbedder::default()));
        }
        let client = self.endpoint(self.key()?, "openai", &self.ai_base_url, &self.ai_model)?;
        let embedder = client.embedder(&self.ai_embedding_model, self.ai_embedding_dimensions);
        let (retry, breaker) = self.policies();
        let redaction = if self.ai_redaction { Redaction::default() } else { Redaction::none() };
        Ok(Arc::new(ReliableEmbedder::new(Arc::new(embedder), retry, breaker, clock, redaction)))
    }

    /// The endpoint's key, inline or from its file; none for keyless servers.
    fn key(&self) -> Result<Option<String>, ConfigError> {
        let key = inline_or_file(&self.ai_api_key, self.ai_api_key_file.as_ref(), "TT_AI_API_KEY_FILE")?;
        Ok((!key.is_empty()).then_some(key))
    }

    fn endpoint(
        &self,
        key: Option<String>,
        name: &str,
        base: &str,
        model: &str,
    ) -> Result<OpenAiCompatible, ConfigError> {
        let mut config = OpenAiConfig::new(name, base, model);
        config.api_key = key;
        config.stall = self.ai_stall.0;
        OpenAiCompatible::new(config).map_err(|e| ConfigError::new("TT_AI_BASE_URL", e.to_string()))
    }

    fn policies(&self) -> (RetryPolicy, BreakerPolicy) {
        let retry = RetryPolicy {
            attempts: self.ai_attempts,
            deadline: self.ai_deadline.0,
            ..RetryPolicy::default()
        };
        (retry, BreakerPolicy { failures: self.ai_attempts + 2, ..BreakerPolicy::default() })
    }

    /// The Manus client, when a key is configured.
    pub fn manus(&self, clock: SharedClock) -> Result<Option<Manus>, ConfigError> {
        let key =
            inline_or_file(&self.manus_api_key, self.manus_api_key_file.as_ref(), "TT_MANUS_API_KEY_FILE")?;
        if key.is_empty() {
            return Ok(None);
        }
        let mut config = ManusConfig::new(&key);
        config.base_url = self.manus_base_url.clone();
        config.agent_profile = self.manus_agent_profile.clone();
        Manus::new(config, clock).map(Some).map_err(|e| ConfigError::new("TT_MANUS_BASE_URL", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        ai: AiArgs,
    }

    fn parse(args: &[&str]) -> AiArgs {
        Cli::try_parse_from(std::iter::once("tt").chain(args.iter().copied())).expect("parses").ai
    }

    #[derive(Default)]
    struct Nowhere;

    impl Report for Nowhere {
        fn report(&self, _: tt_proto::common::v1::Event) -> futures::future::BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    fn opening(cache: &Cache) -> Opening<'_> {
        Opening {
            service: "missions",
            cache,
            identity: None,
            report: Arc::new(Nowhere),
            clock: Arc::new(tt_common::clock::SystemClock),
        }
    }

    #[tokio::test]
    async fn the_embedder_is_lexical_offline_and_the_endpoints_behind_retries_and_redaction() {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers::path};
        let clock: SharedClock = Arc::new(tt_common::clock::SystemClock);
        let offline = parse(&[]).embedder(Arc::clone(&clock)).expect("offline");
        assert_eq!((offline.model(), offline.dimension()), ("offline-lexical-1", LexicalEmbedder::DIMENSION));
        let server = MockServer::start().await;
        Mock::given(path("/embeddings"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        let vector = r#"{"data":[{"embedding":[0.6,0.8],"index":0}]}"#;
        Mock::given(path("/embeddings"))
            .respond_with(ResponseTemplate::new(200).set_body_string(vector))
            .mount(&server)
            .await;
        let uri = server.uri();
        let args = parse(&[
            "--ai-provider=openai",
            &format!("--ai-base-url={uri}"),
            "--ai-embedding-model=e",
            "--ai-embedding-dimensions=2",
        ]);
        args.validate().expect("valid");
        let embedder = args.embedder(clock).expect("opens");
        assert_eq!((embedder.model(), embedder.dimension()), ("e", 2));
        let vectors = embedder.embed(vec!["write to ann@example.com".into()]).await.expect("retried");
        assert_eq!(vectors, vec![vec![0.6, 0.8]]);
        let sent = server.received_requests().await.unwrap_or_default();
        assert_eq!(sent.len(), 2, "the 503 was retried");
        let body = String::from_utf8_lossy(&sent[1].body);
        assert!(!body.contains("ann@example.com") && body.contains("[email removed]"), "{body}");
        let zero = parse(&["--ai-embedding-dimensions=0"]).validate().expect_err("refused");
        assert_eq!(zero.key, "TT_AI_EMBEDDING_DIMENSIONS");
    }

    #[tokio::test]
    async fn the_default_is_offline_and_answers_without_a_key() {
        let args = parse(&[]);
        assert_eq!(args.ai_provider, ProviderKind::Offline);
        args.validate().expect("valid");
        let cache = Cache::memory(100, "t:");
        let ai = args.open(opening(&cache)).expect("opens");
        let call = crate::AiCall {
            user: "u".into(),
            time_zone: "UTC".into(),
            mentor: None,
            purpose: "test".into(),
            tier: crate::Tier::Basic,
            deadline: None,
        };
        let request = crate::ChatRequest {
            messages: vec![crate::Message::user("hi")],
            ..crate::ChatRequest::default()
        };
        let reply = ai.complete(&call, request).await.expect("reply");
        assert_eq!(reply.provider, offline::PROVIDER);
        assert!(args.manus(Arc::new(tt_common::clock::SystemClock)).expect("no key").is_none());
    }

    #[test]
    fn settings_that_cannot_work_are_refused_with_their_key() {
        let refused = |args: &[&str]| parse(args).validate().expect_err("refused").key;
        assert_eq!(refused(&["--ai-provider", "openai"]), "TT_AI_BASE_URL");
        let fallback =
            ["--ai-provider", "openai", "--ai-base-url", "http://x/v1", "--ai-fallbacks", "gpt-4o"];
        assert_eq!(refused(&fallback), "TT_AI_FALLBACKS");
        assert_eq!(refused(&["--ai-attempts", "0"]), "TT_AI_ATTEMPTS");
        assert_eq!(refused(&["--ai-moderation", "endpoint"]), "TT_AI_MODERATION");
        assert_eq!(refused(&["--manus-webhook-listen", "127.0.0.1:8090"]), "TT_MANUS_WEBHOOK_URL");
        let chain = parse(&[
            "--ai-provider",
            "openai",
            "--ai-base-url",
            "http://x/v1",
            "--ai-fallbacks",
            "llama3@http://ollama:11434/v1,gpt-4o@https://litellm/v1",
        ]);
        chain.validate().expect("a valid chain");
        let cache = Cache::memory(100, "t:");
        let ai = chain.open(opening(&cache)).expect("opens");
        assert!(format!("{ai:?}").contains("fallback-2"), "{ai:?}");
    }
}
