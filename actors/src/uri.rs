//! Validation of what a program registers: the service URI and its
//! attributes.
//!
//! A service URI is the key of the services table and what subscriptions
//! match their regular expressions against, so it must be unambiguous: an
//! absolute URI as defined by RFC 3986 (a scheme, then whatever that scheme
//! allows: `tcp://10.0.0.1:5432`, `http://[::1]:8080/x?y=1#z`,
//! `urn:isbn:0451450523`, `unix:/run/x.sock`), ASCII only, with spaces and
//! control characters percent-encoded, and no longer than the configured
//! maximum. The grammar is checked with the strict parser of the
//! `fluent-uri` crate; no normalization is applied, so two spellings of the
//! same resource are two services. Attributes are a small map of
//! identifier-like keys to free-text values, bounded by the constants below
//! so that one registration cannot bloat every node's table.
//!
//! Every error's `Display` is a complete sentence fit for an `Error` frame:
//! it names the offending URI or attribute and what is wrong with it.

use std::collections::BTreeMap;

use fluent_uri::{ParseErrorKind, Uri, UriRef};

/// Most attributes one service may carry.
pub const MAX_ATTRS: usize = 64;

/// Longest attribute key, in bytes. Keys are at least one byte long.
pub const MAX_ATTR_KEY_LEN: usize = 128;

/// Longest attribute value, in bytes (UTF-8). Values may be empty.
pub const MAX_ATTR_VALUE_LEN: usize = 4096;

/// Longest rendering of a URI or key quoted inside an error message; longer
/// ones are cut and end with `...`.
const QUOTE_MAX: usize = 120;

/// Why a service URI was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UriError {
    /// The URI is the empty string.
    #[error("invalid URI: the URI is empty")]
    Empty,
    /// The URI is longer than the configured maximum.
    #[error("invalid URI: {len} bytes long, more than the maximum of {max} bytes")]
    TooLong {
        /// Length of the refused URI, in bytes.
        len: usize,
        /// The configured maximum, in bytes.
        max: usize,
    },
    /// The URI does not follow the RFC 3986 grammar. `reason` starts with
    /// the offending URI, quoted, then says what is wrong and where (byte
    /// offsets count from 0), e.g. `"ht tp://x": space at byte 2 ...`.
    #[error("invalid URI {reason}")]
    Syntax {
        /// The quoted URI and what is wrong with it.
        reason: String,
    },
    /// A well-formed relative reference where an absolute URI (with a
    /// scheme) is required.
    #[error(
        "invalid URI: no scheme; a service URI must be absolute, such as \
         \"tcp://host:5432\" or \"unix:/run/app.sock\""
    )]
    NoScheme,
}

/// Checks that `uri` may be registered as a service URI: not empty, at most
/// `max_len` bytes, printable ASCII only, and an absolute URI per RFC 3986.
///
/// # Errors
///
/// The first problem found, as a [`UriError`].
pub fn validate_uri(uri: &str, max_len: usize) -> Result<(), UriError> {
    if uri.is_empty() {
        return Err(UriError::Empty);
    }
    if uri.len() > max_len {
        return Err(UriError::TooLong {
            len: uri.len(),
            max: max_len,
        });
    }
    if let Some((index, ch)) = uri
        .char_indices()
        .find(|&(_, c)| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        let what = if ch == ' ' {
            "space".to_owned()
        } else if ch.is_whitespace() {
            format!("whitespace character U+{:04X}", u32::from(ch))
        } else if ch.is_control() {
            format!("control character U+{:04X}", u32::from(ch))
        } else {
            format!("non-ASCII character {ch:?}")
        };
        return Err(syntax(
            uri,
            format!("{what} at byte {index}; it must be percent-encoded"),
        ));
    }
    match Uri::parse(uri) {
        Ok(_) => Ok(()),
        // Parsed as a reference, only the scheme is missing.
        Err(_) if UriRef::parse(uri).is_ok() => Err(UriError::NoScheme),
        Err(e) => {
            let index = e.index();
            let what = match e.kind() {
                ParseErrorKind::InvalidPctEncodedOctet => {
                    "invalid percent-encoding: '%' must be followed by two hex digits".to_owned()
                }
                ParseErrorKind::InvalidIpv6Addr => "invalid IPv6 address".to_owned(),
                ParseErrorKind::UnexpectedChar => match uri[index..].chars().next() {
                    Some(c) => format!("unexpected character {c:?}"),
                    None => "unexpected end".to_owned(),
                },
            };
            Err(syntax(uri, format!("{what} at byte {index}")))
        }
    }
}

fn syntax(uri: &str, what: String) -> UriError {
    UriError::Syntax {
        reason: format!("{}: {what}", quote(uri)),
    }
}

/// Why a set of attributes was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AttrError {
    /// More than [`MAX_ATTRS`] attributes.
    #[error("invalid attributes: {count} attributes, more than the maximum of {max}")]
    TooMany {
        /// Number of attributes given.
        count: usize,
        /// [`MAX_ATTRS`].
        max: usize,
    },
    /// An attribute key is the empty string.
    #[error("invalid attribute: empty key")]
    EmptyKey,
    /// An attribute key is longer than [`MAX_ATTR_KEY_LEN`].
    #[error("invalid attribute key {key}: {len} bytes long, more than the maximum of {max}")]
    KeyTooLong {
        /// The key, quoted and possibly shortened.
        key: String,
        /// Its length in bytes.
        len: usize,
        /// [`MAX_ATTR_KEY_LEN`].
        max: usize,
    },
    /// An attribute key holds a character outside `[A-Za-z0-9._-]`.
    #[error(
        "invalid attribute key {key}: character {ch:?} at byte {index}; \
         keys may only contain A-Z, a-z, 0-9, '.', '_' and '-'"
    )]
    KeyChar {
        /// The key, quoted and possibly shortened.
        key: String,
        /// The first character not allowed.
        ch: char,
        /// Its byte offset in the key.
        index: usize,
    },
    /// An attribute value is longer than [`MAX_ATTR_VALUE_LEN`].
    #[error("invalid value of attribute {key}: {len} bytes long, more than the maximum of {max}")]
    ValueTooLong {
        /// The key, quoted.
        key: String,
        /// The value's length in bytes.
        len: usize,
        /// [`MAX_ATTR_VALUE_LEN`].
        max: usize,
    },
    /// An attribute value holds a control character (U+0000 to U+001F,
    /// U+007F to U+009F; this includes tab and newline).
    #[error("invalid value of attribute {key}: control character U+{code:04X} at byte {index}")]
    ValueControl {
        /// The key, quoted.
        key: String,
        /// The control character's code point.
        code: u32,
        /// Its byte offset in the value.
        index: usize,
    },
}

/// Checks a service's attributes against the limits above: at most
/// [`MAX_ATTRS`] entries; keys of 1 to [`MAX_ATTR_KEY_LEN`] bytes from
/// `[A-Za-z0-9._-]`; values of at most [`MAX_ATTR_VALUE_LEN`] bytes without
/// control characters.
///
/// # Errors
///
/// The first problem found (keys in order), as an [`AttrError`].
pub fn validate_attrs(attrs: &BTreeMap<String, String>) -> Result<(), AttrError> {
    if attrs.len() > MAX_ATTRS {
        return Err(AttrError::TooMany {
            count: attrs.len(),
            max: MAX_ATTRS,
        });
    }
    for (key, value) in attrs {
        validate_key(key)?;
        if value.len() > MAX_ATTR_VALUE_LEN {
            return Err(AttrError::ValueTooLong {
                key: quote(key),
                len: value.len(),
                max: MAX_ATTR_VALUE_LEN,
            });
        }
        if let Some((index, c)) = value.char_indices().find(|(_, c)| c.is_control()) {
            return Err(AttrError::ValueControl {
                key: quote(key),
                code: u32::from(c),
                index,
            });
        }
    }
    Ok(())
}

fn validate_key(key: &str) -> Result<(), AttrError> {
    if key.is_empty() {
        return Err(AttrError::EmptyKey);
    }
    if key.len() > MAX_ATTR_KEY_LEN {
        return Err(AttrError::KeyTooLong {
            key: quote(key),
            len: key.len(),
            max: MAX_ATTR_KEY_LEN,
        });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    match key.char_indices().find(|&(_, c)| !allowed(c)) {
        Some((index, ch)) => Err(AttrError::KeyChar {
            key: quote(key),
            ch,
            index,
        }),
        None => Ok(()),
    }
}

/// `s` in double quotes with Rust escapes (so control characters are
/// visible), cut after [`QUOTE_MAX`] characters.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests;
