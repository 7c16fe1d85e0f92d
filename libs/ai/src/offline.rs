//! The offline provider: the embedded default and the tests' provider. Nothing to install,
//! nothing on the network, the same answer to the same request on every machine.
//!
//! [`OfflineChat`] composes its reply from the request's parts (the mentor's persona, the
//! learner's view, the retrieved material, the question) and says first that it is not a
//! language model. It streams like a real provider: word by word, then one completion with
//! estimated usage. [`LexicalEmbedder`] hashes words, word pairs and character trigrams into a
//! fixed number of signed buckets (the hashing trick), so texts sharing words and word pieces
//! land near each other and retrieval works by overlap of vocabulary rather than meaning.

use futures::{StreamExt, future::BoxFuture};

use crate::{
    chat::{ChatEvent, ChatProvider, ChatRequest, ChatStream, Completion, FinishReason, Usage},
    embed::Embedder,
    error::AiError,
    stable_hash,
    tokens::{estimate, estimate_messages},
};

/// What every offline reply starts with.
pub const LABEL: &str = "[Offline mentor: a deterministic reply composed from the mentor's persona, your profile and \
     the material at hand. It is not a language model.]";

pub const PROVIDER: &str = "offline";
pub const MODEL: &str = "offline-composer-1";

/// Ways to open and close, picked by the question so a conversation does not repeat itself.
const OPENINGS: &[&str] = &[
    "Let me tell you what I have seen work.",
    "Good question; people ask it less often than they should.",
    "Here is how I would think about it.",
    "I have been where you are, more or less.",
];
const NEXT_STEPS: &[&str] = &[
    "write down the one skill that would change the most for you, and spend an hour on it this week",
    "find one person who does the work you want and ask them how their last month went",
    "turn your next goal into a small project you can show someone in two weeks",
    "review what you finished last month and name what you would do differently",
];

/// How much of each part a reply quotes.
const QUOTE_CHARS: usize = 220;
const MAX_MATERIAL: usize = 3;

#[derive(Debug, Clone, Default)]
pub struct OfflineChat;

impl OfflineChat {
    /// The reply to `request`, in full.
    pub fn reply(request: &ChatRequest) -> String {
        let question = request.question().unwrap_or("").trim();
        let pick = stable_hash(question.as_bytes());
        let mut out = vec![LABEL.to_owned()];
        let mut intro = String::new();
        if let Some(p) = &request.persona {
            intro.push_str(&format!("{} here", p.name.trim()));
            if !p.era.trim().is_empty() {
                intro.push_str(&format!(", speaking from {}", p.era.trim()));
            }
            intro.push_str(". ");
        }
        intro.push_str(OPENINGS[index(pick, OPENINGS.len())]);
        out.push(intro);
        if !question.is_empty() {
            out.push(format!("You asked: \"{}\"", quote(question)));
        }
        if let Some(learner) = request.learner.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            out.push(format!("From your profile: {}", quote(learner)));
        }
        for m in request.material.iter().take(MAX_MATERIAL) {
            out.push(format!("From \"{}\": {}", m.title.trim(), quote(first_sentence(&m.text))));
        }
        out.push(format!("A next step: {}.", NEXT_STEPS[index(pick >> 8, NEXT_STEPS.len())]));
        out.join("\n\n")
    }
}

fn index(hash: u64, len: usize) -> usize {
    usize::try_from(hash % u64::try_from(len).unwrap_or(1)).unwrap_or(0)
}

/// `text` on one line, cut at a word boundary near [`QUOTE_CHARS`].
fn quote(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= QUOTE_CHARS {
        return flat;
    }
    let cut: String = flat.chars().take(QUOTE_CHARS).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{cut}…")
}

fn first_sentence(text: &str) -> &str {
    let text = text.trim();
    text.find(['.', '!', '?']).map_or(text, |end| &text[..=end])
}

impl ChatProvider for OfflineChat {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream, AiError>> {
        let text = Self::reply(&request);
        let mut completion = estimate(&text);
        let finish = match request.max_tokens {
            Some(max) if completion > max => FinishReason::Length,
            _ => FinishReason::Stop,
        };
        // A cut reply keeps whole words up to the budget, as a real model stops at max_tokens.
        let mut deltas = Vec::new();
        let (mut spent, mut sent) = (0, 0);
        for (i, word) in text.split_inclusive(char::is_whitespace).enumerate() {
            let cost = estimate(word).max(1);
            if request.max_tokens.is_some_and(|max| spent + cost > max) && i > 0 {
                break;
            }
            spent += cost;
            sent += word.len();
            deltas.push(Ok(ChatEvent::Delta(word.to_owned())));
        }
        if finish == FinishReason::Length {
            completion = spent;
        }
        let usage =
            Usage { prompt: estimate_messages(&request.prompt()), completion, cached: 0, estimated: true };
        // The deltas are a prefix of the reply (whole words, whitespace kept).
        let done = Completion {
            text: text[..sent].to_owned(),
            finish,
            usage,
            provider: PROVIDER.into(),
            model: MODEL.into(),
            fallback: false,
        };
        deltas.push(Ok(ChatEvent::Done(done)));
        Box::pin(async move { Ok(futures::stream::iter(deltas).boxed()) })
    }
}

/// Hashed lexical features: the offline embedder.
#[derive(Debug, Clone)]
pub struct LexicalEmbedder {
    dimension: usize,
}

impl Default for LexicalEmbedder {
    fn default() -> Self {
        Self::new(Self::DIMENSION)
    }
}

impl LexicalEmbedder {
    pub const DIMENSION: usize = 384;

    pub fn new(dimension: usize) -> Self {
        Self { dimension: dimension.max(1) }
    }

    /// The unit vector of `text` (all zeros when it has no words).
    pub fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0_f32; self.dimension];
        let lower = text.to_lowercase();
        let words: Vec<&str> =
            lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
        for word in &words {
            self.add(&mut v, word.as_bytes(), 1.0);
            let padded: Vec<char> = format!("^{word}$").chars().collect();
            for gram in padded.windows(3) {
                self.add(&mut v, gram.iter().collect::<String>().as_bytes(), 0.25);
            }
        }
        for pair in words.windows(2) {
            self.add(&mut v, format!("{} {}", pair[0], pair[1]).as_bytes(), 0.5);
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }

    fn add(&self, v: &mut [f32], feature: &[u8], weight: f32) {
        let h = stable_hash(feature);
        let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
        v[index(h, self.dimension)] += sign * weight;
    }
}

impl Embedder for LexicalEmbedder {
    fn model(&self) -> &str {
        "offline-lexical-1"
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, inputs: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, AiError>> {
        let vectors = inputs.iter().map(|t| self.vector(t)).collect();
        Box::pin(async move { Ok(vectors) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        chat::{Material, Message, Persona, complete},
        embed::cosine,
    };

    fn request(question: &str) -> ChatRequest {
        ChatRequest {
            persona: Some(Persona {
                name: "Ada Hollis".into(),
                era: "the 1980s mainframe floor".into(),
                ..Persona::default()
            }),
            learner: Some("Goal: become a data engineer. Skills: SQL (3/5).".into()),
            material: vec![Material {
                title: "Pipelines 101".into(),
                text: "Start with the data you have. Then automate.".into(),
            }],
            messages: vec![Message::user(question)],
            ..ChatRequest::default()
        }
    }

    #[tokio::test]
    async fn replies_are_labelled_composed_from_the_request_and_deterministic() {
        let a = complete(&OfflineChat, request("How do I get my first data job?")).await.expect("reply");
        let again = complete(&OfflineChat, request("How do I get my first data job?")).await.expect("reply");
        assert_eq!(a, again);
        assert!(a.text.starts_with(LABEL));
        for part in [
            "Ada Hollis",
            "1980s mainframe",
            "first data job",
            "data engineer",
            "Pipelines 101",
            "Start with the data you have.",
        ] {
            assert!(a.text.contains(part), "{part} in {}", a.text);
        }
        assert!(!a.text.contains("Then automate"), "material is quoted by its first sentence");
        assert_eq!((a.finish, a.provider.as_str(), a.model.as_str()), (FinishReason::Stop, PROVIDER, MODEL));
        assert!(a.usage.prompt > 0 && a.usage.completion > 0);
        let other = complete(&OfflineChat, request("Should I learn Rust or Go?")).await.expect("reply");
        assert_ne!(a.text, other.text);
    }

    #[tokio::test]
    async fn it_streams_words_that_add_up_to_the_completion() {
        let mut stream = OfflineChat.stream(request("What now?")).await.expect("stream");
        let mut text = String::new();
        let mut deltas = 0;
        let done = loop {
            match stream.next().await.expect("an event").expect("no error") {
                ChatEvent::Delta(d) => {
                    deltas += 1;
                    text.push_str(&d);
                }
                ChatEvent::Done(c) => break c,
            }
        };
        assert!(deltas > 10, "word by word: {deltas}");
        assert_eq!(done.text, text);
        assert!(stream.next().await.is_none(), "nothing after the completion");
    }

    #[tokio::test]
    async fn max_tokens_cuts_at_a_word_and_says_so() {
        let cut = ChatRequest { max_tokens: Some(12), ..request("Tell me everything.") };
        let c = complete(&OfflineChat, cut).await.expect("reply");
        assert_eq!(c.finish, FinishReason::Length);
        assert!(c.usage.completion <= 12, "{:?}", c.usage);
        assert!(LABEL.starts_with(c.text.trim_end()), "the first words, whole: {:?}", c.text);
    }

    #[tokio::test]
    async fn lexical_vectors_rank_shared_vocabulary_first() {
        let e = LexicalEmbedder::default();
        let texts = [
            "data engineering pipelines with SQL",
            "building SQL data pipelines",
            "watercolour painting for beginners",
            "",
        ];
        let v = e.embed(texts.iter().map(|t| (*t).to_owned()).collect()).await.expect("vectors");
        assert_eq!(v.len(), 4);
        assert!(v.iter().all(|x| x.len() == e.dimension()));
        assert!((v[0].iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4, "unit length");
        assert!(
            cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2,
            "{} vs {}",
            cosine(&v[0], &v[1]),
            cosine(&v[0], &v[2])
        );
        assert_eq!(cosine(&v[0], &v[3]), 0.0, "an empty text is near nothing");
        assert_eq!(
            e.vector("Pipelines, SQL!"),
            e.vector("pipelines sql"),
            "case and punctuation do not count"
        );
        assert_eq!(e.vector("pipelines sql"), LexicalEmbedder::default().vector("pipelines sql"));
    }
}
