//! A node's table as a test sees it ([`Listing`]: URI -> origin and
//! attributes), how to build the listing a test expects ([`uris`],
//! [`listing_of`], [`only`]), and how to say what a node lists against what was expected
//! ([`difference`], [`summary`]) when a wait runs out.

use std::collections::BTreeMap;

/// A service as a listing shows it, keyed by URI in a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Node where it was registered.
    pub origin: String,
    /// Its attributes.
    pub attrs: BTreeMap<String, String>,
}

/// A node's full table: URI -> service.
pub type Listing = BTreeMap<String, Listed>;

/// The listing of `uris`, all registered at `origin` without attributes.
pub fn listing_of<S: AsRef<str>>(origin: &str, uris: &[S]) -> Listing {
    uris.iter()
        .map(|uri| {
            (
                uri.as_ref().to_string(),
                Listed {
                    origin: origin.to_string(),
                    attrs: BTreeMap::new(),
                },
            )
        })
        .collect()
}

/// `count` URIs named after `prefix`: `tcp://{prefix}-{k}.example:{1000 + k}`.
pub fn uris(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|k| format!("tcp://{prefix}-{k}.example:{}", 1000 + k))
        .collect()
}

/// The entries of `full` whose origin is one of `origins`.
pub fn only<S: AsRef<str>>(full: &Listing, origins: &[S]) -> Listing {
    full.iter()
        .filter(|(_, s)| origins.iter().any(|o| o.as_ref() == s.origin))
        .map(|(u, s)| (u.clone(), s.clone()))
        .collect()
}

/// How many services of each origin `listing` holds, as `n1 20, n5 15`
/// (`nothing` when empty).
pub fn summary(listing: &Listing) -> String {
    let mut per_origin: BTreeMap<&str, usize> = BTreeMap::new();
    for listed in listing.values() {
        *per_origin.entry(&listed.origin).or_default() += 1;
    }
    if per_origin.is_empty() {
        return "nothing".to_string();
    }
    per_origin
        .iter()
        .map(|(origin, count)| format!("{origin} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `listing` lacks or has too many of, compared with `expected` (URI
/// and origin; attributes too where `expected` has any); `None` when they
/// match. The text gives both sides per origin and a few URIs of each kind.
pub fn difference(expected: &Listing, listing: &Listing) -> Option<String> {
    let missing: Vec<&String> = expected
        .iter()
        .filter(|(uri, want)| {
            listing.get(*uri).is_none_or(|got| {
                got.origin != want.origin || (!want.attrs.is_empty() && got.attrs != want.attrs)
            })
        })
        .map(|(uri, _)| uri)
        .collect();
    let extra: Vec<&String> = listing
        .keys()
        .filter(|uri| !expected.contains_key(*uri))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    let mut text = format!(
        "lists {} ({}), expected {} ({})",
        listing.len(),
        summary(listing),
        expected.len(),
        summary(expected),
    );
    for (count, what, sample) in [
        (missing.len(), "missing or different", &missing),
        (extra.len(), "extra", &extra),
    ] {
        if count > 0 {
            let sample: Vec<&String> = sample.iter().take(3).copied().collect();
            text.push_str(&format!("; {count} {what} (e.g. {sample:?})"));
        }
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_both_sides_per_origin() {
        let mut expected = listing_of("n1", &["tcp://a:1", "tcp://b:1"]);
        expected.extend(listing_of("n5", &["tcp://c:1"]));
        assert_eq!(difference(&expected, &expected.clone()), None);
        let listing = listing_of("n1", &["tcp://a:1", "tcp://b:1", "tcp://d:1"]);
        let text = difference(&expected, &listing).expect("they differ");
        assert!(
            text.starts_with("lists 3 (n1 3), expected 3 (n1 2, n5 1); 1 missing"),
            "{text}"
        );
        assert!(text.contains("tcp://c:1") && text.contains("tcp://d:1"));
        // Same URI, another origin: a difference too.
        let moved = listing_of("n5", &["tcp://a:1", "tcp://b:1"]);
        assert!(difference(&only(&expected, &["n1"]), &moved).is_some());
        assert_eq!(summary(&Listing::new()), "nothing");
    }
}
