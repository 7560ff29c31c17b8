//! A subscription pattern as the node holds it: either a set of literals
//! that decide a match by themselves (no regex engine at all), or a
//! compiled [`Regex`].
//!
//! Most subscriptions are literal prefixes (`^tcp://svc-12/`) or plain
//! literals (`/v2/`). For those, [`Plan`] finds *exact* prefix literals
//! whose occurrence proves a match (at offset 0 when the pattern starts
//! with `^`), so matching is `starts_with` or a substring search, and the
//! regex crate's automata and caches (about 10 KiB for even the simplest
//! pattern) are never built. Every other pattern compiles as before.
//!
//! A [`Pattern`] is a cheap handle (an `Arc`): the matcher, the
//! supervisor and the node's pattern cache
//! (`crate::subscription::patterns`) share one compiled form per distinct
//! pattern text.

use std::sync::Arc;

use regex::Regex;

use super::{Plan, RegexError};

/// Fixed bytes a literal pattern holds besides its text and literals: the
/// `Arc`'s header and the boxed slices.
pub const MEMORY_PER_LITERAL_PATTERN: usize = 128;

/// A compiled subscription pattern (cloning shares it).
#[derive(Debug, Clone)]
pub struct Pattern(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    text: Box<str>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A match is exactly an occurrence of one of these (at offset 0 when
    /// `anchored`).
    Literals {
        literals: Box<[Box<[u8]>]>,
        anchored: bool,
    },
    Regex(Regex),
}

impl Pattern {
    /// `pattern`'s compiled form: literals when they decide a match,
    /// else a regex built as [`super::compile`] builds it, within
    /// `size_limit` bytes either way.
    ///
    /// # Errors
    ///
    /// As [`super::compile`].
    pub fn compile(pattern: &str, size_limit: usize) -> Result<Pattern, RegexError> {
        let hir = super::parse(pattern)?;
        if let Some(kind) = literal_kind(&Plan::from_hir(&hir)) {
            let bytes: usize = match &kind {
                Kind::Literals { literals, .. } => literals.iter().map(|l| l.len()).sum(),
                Kind::Regex(_) => 0,
            };
            if bytes > size_limit {
                return Err(super::too_large(pattern, size_limit));
            }
            return Ok(Pattern(Arc::new(Inner {
                text: pattern.into(),
                kind,
            })));
        }
        super::build(pattern, size_limit).map(Pattern::from)
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// Whether `uri` matches (anywhere, as `Regex::is_match`).
    pub fn is_match(&self, uri: &str) -> bool {
        match &self.0.kind {
            Kind::Literals { literals, anchored } => {
                let uri = uri.as_bytes();
                if *anchored {
                    literals.iter().any(|l| uri.starts_with(l))
                } else {
                    literals
                        .iter()
                        .any(|l| uri.windows(l.len()).any(|w| w == &l[..]))
                }
            }
            Kind::Regex(r) => r.is_match(uri),
        }
    }

    /// True when matching needs no regex engine.
    pub fn is_literal(&self) -> bool {
        matches!(self.0.kind, Kind::Literals { .. })
    }

    /// Estimated bytes held by a literal pattern; `None` for a regex
    /// (whose estimate [`super::compile_measured`] makes from its NFA).
    pub fn literal_memory(&self) -> Option<usize> {
        match &self.0.kind {
            Kind::Literals { literals, .. } => Some(
                MEMORY_PER_LITERAL_PATTERN
                    + self.0.text.len()
                    + literals.iter().map(|l| l.len() + 16).sum::<usize>(),
            ),
            Kind::Regex(_) => None,
        }
    }

    /// Whether both handles share one compiled form.
    pub fn same(&self, other: &Pattern) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<Regex> for Pattern {
    /// Drops the regex if its literals decide a match.
    fn from(regex: Regex) -> Self {
        let text: Box<str> = regex.as_str().into();
        let kind = literal_kind(&Plan::of(&text)).unwrap_or(Kind::Regex(regex));
        Pattern(Arc::new(Inner { text, kind }))
    }
}

/// The literal form of a plan whose every literal proves a match.
fn literal_kind(plan: &Plan) -> Option<Kind> {
    match plan {
        Plan::Literals { literals, anchored } if literals.iter().all(|(_, proves)| *proves) => {
            Some(Kind::Literals {
                literals: literals
                    .iter()
                    .map(|(l, _)| l.clone().into_boxed_slice())
                    .collect(),
                anchored: *anchored,
            })
        }
        _ => None,
    }
}
