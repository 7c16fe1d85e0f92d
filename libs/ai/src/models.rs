//! What the library knows of each model: its prices (for the cost of every call), its context
//! window, its quality tier and whether it honours JSON output (for choosing one), and the
//! encoding that counts its tokens, when one ships.
//!
//! `data/models.toml` ships the defaults; a deployment's own file overrides or adds entries by
//! name. Costs are integers of micro-dollars, so sums over millions of calls do not drift.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{chat::Usage, tokens::Tokenizer};

const DEFAULTS: &str = include_str!("../data/models.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Basic,
    Standard,
    Premium,
}

/// One model: USD per million tokens, context window, tier, JSON support, tokenizer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    pub input: f64,
    pub cached_input: f64,
    pub output: f64,
    pub context: u32,
    pub tier: Tier,
    #[serde(default)]
    pub json: bool,
    /// The encoding that counts this model's tokens exactly; none: estimated.
    #[serde(default)]
    pub tokenizer: Option<Tokenizer>,
}

/// What a request needs of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Prompt and completion tokens together.
    pub context: u32,
    pub tier: Tier,
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("the models file is not valid TOML of models: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("model {model}: {problem}")]
    Invalid { model: String, problem: &'static str },
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    model: BTreeMap<String, ModelInfo>,
}

#[derive(Debug, Clone)]
pub struct Models {
    models: BTreeMap<String, ModelInfo>,
}

impl Models {
    /// The shipped table.
    pub fn defaults() -> Self {
        match Self::parse(DEFAULTS) {
            Ok(models) => Self { models },
            // The shipped file is checked by a test; an empty table only prices nothing.
            Err(e) => {
                tracing::error!(error = %e, "the shipped models table does not parse");
                Self { models: BTreeMap::new() }
            }
        }
    }

    /// The shipped table with `text` (a deployment's file) over it.
    pub fn with_overrides(mut self, text: &str) -> Result<Self, ModelsError> {
        self.models.extend(Self::parse(text)?);
        Ok(self)
    }

    fn parse(text: &str) -> Result<BTreeMap<String, ModelInfo>, ModelsError> {
        let file: File = toml::from_str(text)?;
        for (name, m) in &file.model {
            let invalid = |problem| ModelsError::Invalid { model: name.clone(), problem };
            let prices = [m.input, m.cached_input, m.output];
            if prices.iter().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(invalid("prices must be zero or more"));
            }
            if m.context == 0 {
                return Err(invalid("context must be above zero"));
            }
        }
        Ok(file.model)
    }

    /// The table with every tokenizer removed: all counts are estimates.
    pub fn estimated(mut self) -> Self {
        for m in self.models.values_mut() {
            m.tokenizer = None;
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&ModelInfo> {
        self.models.get(name)
    }

    /// What `usage` of `model` cost, in micro-dollars; `None` for a model without prices.
    pub fn cost_micros(&self, model: &str, usage: &Usage) -> Option<i64> {
        let m = self.get(model)?;
        let cached = usage.cached.min(usage.prompt);
        let micros = f64::from(usage.prompt - cached) * m.input
            + f64::from(cached) * m.cached_input
            + f64::from(usage.completion) * m.output;
        // Micro-dollars per token equal dollars per million tokens.
        Some(micros.round() as i64)
    }

    /// The model to ask: the one the caller names when it is `available`, else the cheapest
    /// available one that meets `needs` (by its price for this many tokens, ties by name).
    pub fn choose(&self, named: Option<&str>, needs: Needs, available: &[&str]) -> Option<String> {
        if let Some(name) = named.filter(|n| available.contains(n)) {
            return Some(name.to_owned());
        }
        let estimate =
            Usage { prompt: needs.context, completion: needs.context / 4, cached: 0, estimated: true };
        available
            .iter()
            .filter_map(|name| self.get(name).map(|m| (*name, m)))
            .filter(|(_, m)| m.context >= needs.context && m.tier >= needs.tier && (m.json || !needs.json))
            .filter_map(|(name, _)| self.cost_micros(name, &estimate).map(|c| (c, name)))
            .min()
            .map(|(_, name)| name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_prices_calls_in_micro_dollars() {
        let models = Models::defaults();
        assert!(models.get("gpt-4o-mini").is_some() && models.get(crate::offline::MODEL).is_some());
        // 800k uncached and 200k cached prompt tokens, 100k completion tokens.
        let usage = Usage { prompt: 1_000_000, completion: 100_000, cached: 200_000, estimated: false };
        assert_eq!(models.cost_micros("gpt-4o-mini", &usage), Some(120_000 + 15_000 + 60_000));
        assert_eq!(models.cost_micros(crate::offline::MODEL, &usage), Some(0));
        assert_eq!(models.cost_micros("unknown", &usage), None);
        // Cached tokens above the prompt (a confused server) are not billed twice.
        let odd = Usage { prompt: 10, completion: 0, cached: 50, estimated: false };
        assert_eq!(models.cost_micros("gpt-4o", &odd), Some((10.0_f64 * 1.25).round() as i64));
    }

    #[test]
    fn overrides_replace_and_add_models_and_bad_files_are_refused() {
        let models = Models::defaults()
            .with_overrides(
                "[model.\"gpt-4o-mini\"]\ninput = 1.0\ncached_input = 0.5\noutput = 2.0\ncontext = 1000\ntier = \"basic\"\n\
                 [model.local]\ninput = 0.0\ncached_input = 0.0\noutput = 0.0\ncontext = 8192\ntier = \"standard\"\n",
            )
            .expect("overrides");
        assert_eq!(models.get("gpt-4o-mini").map(|m| m.context), Some(1000));
        assert_eq!(models.get("local").map(|m| m.tier), Some(Tier::Standard));
        let negative =
            "[model.x]\ninput = -1.0\ncached_input = 0.0\noutput = 0.0\ncontext = 1\ntier = \"basic\"\n";
        assert!(matches!(Models::defaults().with_overrides(negative), Err(ModelsError::Invalid { .. })));
        let typo = "[model.x]\ninptu = 1.0\n";
        assert!(matches!(Models::defaults().with_overrides(typo), Err(ModelsError::Syntax(_))));
        let unknown = "[model.x]\ninput = 0.0\ncached_input = 0.0\noutput = 0.0\ncontext = 1\ntier = \"basic\"\n\
                       tokenizer = \"llama3\"\n";
        assert!(matches!(Models::defaults().with_overrides(unknown), Err(ModelsError::Syntax(_))));
    }

    #[test]
    fn openai_models_count_exactly_and_the_rest_by_estimate() {
        let models = Models::defaults();
        let tokenizer = |name| models.get(name).and_then(|m| m.tokenizer);
        for name in ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1"] {
            assert_eq!(tokenizer(name), Some(Tokenizer::O200kBase), "{name}");
        }
        assert_eq!(tokenizer("text-embedding-3-small"), Some(Tokenizer::Cl100kBase));
        assert_eq!(tokenizer(crate::offline::MODEL), None);
        let estimated = Models::defaults().estimated();
        assert_eq!(estimated.get("gpt-4o").and_then(|m| m.tokenizer), None);
    }

    #[test]
    fn the_named_model_comes_first_then_the_cheapest_that_fits() {
        let models = Models::defaults();
        let all = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", crate::offline::MODEL];
        let needs = |context, tier, json| Needs { context, tier, json };
        assert_eq!(
            models.choose(Some("gpt-4o"), needs(1000, Tier::Basic, false), &all).as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(
            models.choose(None, needs(1000, Tier::Basic, false), &all).as_deref(),
            Some(crate::offline::MODEL)
        );
        assert_eq!(models.choose(None, needs(1000, Tier::Basic, true), &all).as_deref(), Some("gpt-4o-mini"));
        assert_eq!(
            models.choose(None, needs(200_000, Tier::Standard, false), &all).as_deref(),
            Some("gpt-4.1-mini")
        );
        assert_eq!(models.choose(None, needs(1000, Tier::Premium, false), &all).as_deref(), Some("gpt-4.1"));
        assert_eq!(
            models.choose(Some("gpt-4o"), needs(1000, Tier::Basic, false), &["gpt-4o-mini"]).as_deref(),
            Some("gpt-4o-mini"),
            "a named model that is not configured"
        );
        assert_eq!(models.choose(None, needs(2_000_000, Tier::Basic, false), &all), None);
    }
}
