//! Names of sites and real servers, as the config spells them.

use std::fmt;

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

/// A real server behind the local director, e.g. `rs-5-11`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerId(pub String);

impl ServerId {
    /// A server id from anything string-like.
    pub fn new(s: impl Into<String>) -> ServerId {
        ServerId(s.into())
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
