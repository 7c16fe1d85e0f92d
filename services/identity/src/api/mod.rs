//! The tonic handlers: validate at the edge, call the core, map to proto.

pub mod account;
pub mod admin;
pub mod auth;
pub mod revocations;
pub mod settings;

use std::sync::Arc;

use crate::service::Identity;

/// The handler state: one per service trait, all sharing the core.
#[derive(Debug, Clone)]
pub struct Api(pub Arc<Identity>);

impl std::ops::Deref for Api {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.0
    }
}
