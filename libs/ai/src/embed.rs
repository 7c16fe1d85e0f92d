//! The embeddings interface: batches of texts to vectors of one known dimension.

use futures::future::BoxFuture;

use crate::error::AiError;

pub trait Embedder: Send + Sync {
    /// The model's name in reports (and in stored vectors, so a model change re-embeds).
    fn model(&self) -> &str;

    /// The length of every vector it returns.
    fn dimension(&self) -> usize;

    /// One vector per input, in input order.
    fn embed(&self, inputs: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, AiError>>;
}

/// Cosine similarity; 0 when either vector is all zeros (an empty text).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut aa, mut bb) = (0.0_f32, 0.0_f32, 0.0_f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 { 0.0 } else { dot / (aa.sqrt() * bb.sqrt()) }
}
