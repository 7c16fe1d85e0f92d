//! What happens to text before it leaves for an external provider: a redaction pass (email
//! addresses, phone numbers, keys and tokens replaced by a placeholder naming the kind) and a
//! moderation check of the input and the output, both configurable. The offline provider needs
//! neither: nothing leaves the process.

use std::sync::LazyLock;

use futures::future::BoxFuture;
use regex::Regex;

use crate::{chat::ChatRequest, error::AiError};

/// What the redaction pass looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Email,
    Phone,
    Secret,
}

impl Kind {
    fn placeholder(self) -> &'static str {
        match self {
            Self::Email => "[email removed]",
            Self::Phone => "[phone removed]",
            Self::Secret => "[secret removed]",
        }
    }
}

/// Which kinds to remove (all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redaction {
    pub emails: bool,
    pub phones: bool,
    pub secrets: bool,
}

impl Default for Redaction {
    fn default() -> Self {
        Self { emails: true, phones: true, secrets: true }
    }
}

/// How many of each kind a pass removed (reported, never the values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redacted {
    pub emails: u32,
    pub phones: u32,
    pub secrets: u32,
}

impl std::ops::AddAssign for Redacted {
    fn add_assign(&mut self, other: Self) {
        self.emails += other.emails;
        self.phones += other.phones;
        self.secrets += other.secrets;
    }
}

impl Redacted {
    pub fn total(&self) -> u32 {
        self.emails + self.phones + self.secrets
    }
}

fn pattern(re: &str) -> Regex {
    // The patterns are constants checked by the tests; an invalid one would match nothing.
    Regex::new(re).unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b"));
/// Keys and tokens by their known shapes: OpenAI-style `sk-`, bearer tokens, JWTs, AWS access
/// keys, GitHub tokens, Slack tokens, PEM private keys, and long hexadecimal strings.
static SECRET: LazyLock<Regex> = LazyLock::new(|| {
    pattern(concat!(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        r"|\bsk-[A-Za-z0-9_-]{16,}",
        r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{16,}",
        r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        r"|\bAKIA[0-9A-Z]{16}\b",
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}",
        r"|\bxox[abprs]-[A-Za-z0-9-]{10,}",
        r"|\b[0-9a-fA-F]{32,}\b",
    ))
});
/// A run of digits with the separators phone numbers use; kept only with 9 to 15 digits and
/// when it is not a date or a time.
static PHONE: LazyLock<Regex> = LazyLock::new(|| pattern(r"(?:\+|\b)\d[\d ().-]{6,}\d\b"));
static DATE: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$"));

impl Redaction {
    pub fn none() -> Self {
        Self { emails: false, phones: false, secrets: false }
    }

    /// `text` with what this pass removes replaced, and the counts.
    pub fn text(&self, text: &str) -> (String, Redacted) {
        let mut counts = Redacted::default();
        let mut out = text.to_owned();
        // Secrets first: a token can contain what looks like a phone number.
        if self.secrets {
            out = replace(&out, &SECRET, Kind::Secret, &mut counts.secrets, |_| true);
        }
        if self.emails {
            out = replace(&out, &EMAIL, Kind::Email, &mut counts.emails, |_| true);
        }
        if self.phones {
            out = replace(&out, &PHONE, Kind::Phone, &mut counts.phones, is_phone);
        }
        (out, counts)
    }

    /// Redacts every part of `request` that leaves: messages, the learner's view, material.
    pub fn request(&self, request: &mut ChatRequest) -> Redacted {
        let mut total = Redacted::default();
        let mut apply = |text: &mut String| {
            let (clean, n) = self.text(text);
            *text = clean;
            total += n;
        };
        request.messages.iter_mut().for_each(|m| apply(&mut m.content));
        if let Some(learner) = request.learner.as_mut() {
            apply(learner);
        }
        for m in &mut request.material {
            apply(&mut m.title);
            apply(&mut m.text);
        }
        total
    }
}

fn replace(text: &str, re: &Regex, kind: Kind, count: &mut u32, keep: impl Fn(&str) -> bool) -> String {
    re.replace_all(text, |caps: &regex::Captures<'_>| {
        let found = &caps[0];
        if keep(found) {
            *count += 1;
            kind.placeholder().to_owned()
        } else {
            found.to_owned()
        }
    })
    .into_owned()
}

fn is_phone(candidate: &str) -> bool {
    let digits = candidate.chars().filter(char::is_ascii_digit).count();
    (9..=15).contains(&digits) && !DATE.is_match(candidate.trim())
}

/// A moderation verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused, with the categories it was refused for.
    Flagged(Vec<String>),
}

/// A moderation check of text going to or coming from a model.
pub trait Moderator: Send + Sync {
    fn check<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<Verdict, AiError>>;
}

/// A configured list of terms, matched as whole words whatever their case: the built-in
/// moderator, for deployments without a moderation endpoint.
#[derive(Debug, Clone)]
pub struct TermList {
    terms: Vec<(String, Regex)>,
}

impl TermList {
    /// `terms` as `category:term` (`self-harm:kill myself`) or a bare term (category `blocked`).
    pub fn new(terms: &[&str]) -> Self {
        let terms = terms
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| {
                let (category, term) = t.split_once(':').unwrap_or(("blocked", t));
                let words: Vec<String> = term.split_whitespace().map(regex::escape).collect();
                (category.trim().to_owned(), pattern(&format!(r"(?i)\b{}\b", words.join(r"\s+"))))
            })
            .collect();
        Self { terms }
    }
}

impl Moderator for TermList {
    fn check<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<Verdict, AiError>> {
        let mut categories: Vec<String> =
            self.terms.iter().filter(|(_, re)| re.is_match(text)).map(|(c, _)| c.clone()).collect();
        categories.dedup();
        let verdict = if categories.is_empty() { Verdict::Allowed } else { Verdict::Flagged(categories) };
        Box::pin(async move { Ok(verdict) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Material, Message};

    #[test]
    fn emails_phones_and_secrets_are_replaced_and_counted() {
        let text = "Mail me at Ann.Lee+cv@example.co.uk or call +33 6 12 34 56 78 / (415) 555-0134. \
                    My key is sk-proj-abcdefghijklmnopqrstuv and my token Bearer abc.def-ghi_jkl-mno-pqr.";
        let (clean, n) = Redaction::default().text(text);
        assert_eq!(n, Redacted { emails: 1, phones: 2, secrets: 2 }, "{clean}");
        for gone in ["Ann.Lee", "12 34 56", "555-0134", "sk-proj", "abc.def"] {
            assert!(!clean.contains(gone), "{gone} in {clean}");
        }
        assert!(clean.contains("[email removed]") && clean.contains("[phone removed]"));
        assert!(clean.contains("[secret removed]"));
    }

    #[test]
    fn dates_years_and_short_numbers_stay() {
        let text = "Started 2019-03-01, left 01/02/2024, managed 12 people for 3 years (2015 to 2018), +20%.";
        let (clean, n) = Redaction::default().text(text);
        assert_eq!((clean.as_str(), n.total()), (text, 0));
    }

    #[test]
    fn tokens_of_known_shapes_are_secrets() {
        let jwt =
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----";
        for secret in [
            jwt,
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            pem,
            "0123456789abcdef0123456789abcdef",
        ] {
            let (clean, n) = Redaction::default().text(&format!("value: {secret} end"));
            assert_eq!((clean.as_str(), n.secrets), ("value: [secret removed] end", 1), "{secret}");
        }
    }

    #[test]
    fn a_request_is_redacted_everywhere_it_leaves_and_kinds_can_be_kept() {
        let mut request = ChatRequest {
            learner: Some("Contact: bob@example.com".into()),
            material: vec![Material {
                title: "CV of bob@example.com".into(),
                text: "Phone 020 7946 0958".into(),
            }],
            messages: vec![Message::user("my email is bob@example.com")],
            ..ChatRequest::default()
        };
        let n = Redaction::default().request(&mut request);
        assert_eq!(n, Redacted { emails: 3, phones: 1, secrets: 0 });
        assert!(!format!("{request:?}").contains("bob@"));
        let keep_emails = Redaction { emails: false, ..Redaction::default() };
        assert_eq!(keep_emails.text("bob@example.com").1.total(), 0);
        assert_eq!(Redaction::none().text("sk-abcdefghijklmnopqrstuvwx").1.total(), 0);
    }

    #[tokio::test]
    async fn the_term_list_flags_whole_words_by_category() {
        let m = TermList::new(&["violence:build a bomb", "casino"]);
        assert_eq!(m.check("How do I BUILD  a bomb?").await, Ok(Verdict::Flagged(vec!["violence".into()])));
        assert_eq!(m.check("Casino nights").await, Ok(Verdict::Flagged(vec!["blocked".into()])));
        assert_eq!(m.check("occasional bombastic talk").await, Ok(Verdict::Allowed));
    }
}
