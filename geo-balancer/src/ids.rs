//! Names of sites and real servers, as the config spells them.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A site (one director and its real servers), e.g. `site-b`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SiteId(pub String);

impl SiteId {
    /// A site id from anything string-like.
    pub fn new(s: impl Into<String>) -> SiteId {
        SiteId(s.into())
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A real server behind the local director, e.g. `rs-5-11`. Shared, so a clone (weight
/// plans, load samples and health events carry one each) is a reference count, not a
/// copy of the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerId(Arc<str>);

impl ServerId {
    /// A server id from anything string-like.
    pub fn new(s: impl Into<String>) -> ServerId {
        ServerId(Arc::from(s.into()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
