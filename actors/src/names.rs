//! Node, cluster and environment names: letters, digits, `.` and `-`, not
//! starting with `.` or `-`, at most 253 bytes. A name appears in
//! certificates as a DNS name and in file names, so the settings, the
//! certificate tools and the sync entries received from peers all check
//! names here (the keys that hold names: `[node]` and `[xlreg.cluster]`
//! in `config/default.toml`).

/// Longest name: a DNS name's limit.
pub const MAX_NAME_BYTES: usize = 253;

/// Why a string is not a name. Each message reads after the key or field
/// it is about (`node.name: must not be empty`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The empty string.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`MAX_NAME_BYTES`]; holds the length.
    #[error("is {0} bytes long; at most 253")]
    TooLong(usize),
    /// Starts with `.` or `-`; holds the name.
    #[error("{0:?} must start with a letter or digit")]
    BadStart(String),
    /// Holds a character other than letters, digits, `.` and `-`.
    #[error("{name:?} contains {bad:?}; use letters, digits, '.' and '-'")]
    BadCharacter {
        /// The name.
        name: String,
        /// Its first character out of the set.
        bad: char,
    },
}

/// Checks that `name` is a node, cluster or environment name.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(name.len()));
    }
    if name.starts_with(['.', '-']) {
        return Err(NameError::BadStart(name.to_string()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '-'))
    {
        return Err(NameError::BadCharacter {
            name: name.to_string(),
            bad,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_like() {
        assert_eq!(check("node-a.example"), Ok(()));
        assert_eq!(check(""), Err(NameError::Empty));
        assert!(matches!(check("-a"), Err(NameError::BadStart(_))));
        assert!(matches!(
            check("a b"),
            Err(NameError::BadCharacter { bad: ' ', .. })
        ));
        assert!(matches!(
            check("a_b"),
            Err(NameError::BadCharacter { bad: '_', .. })
        ));
        assert_eq!(check(&"a".repeat(254)), Err(NameError::TooLong(254)));
    }

    #[test]
    fn messages_are_those_the_settings_print() {
        assert_eq!(check("").unwrap_err().to_string(), "must not be empty");
        assert_eq!(
            check(&"a".repeat(254)).unwrap_err().to_string(),
            "is 254 bytes long; at most 253"
        );
        assert_eq!(
            check(".a").unwrap_err().to_string(),
            "\".a\" must start with a letter or digit"
        );
        assert_eq!(
            check("a_b").unwrap_err().to_string(),
            "\"a_b\" contains '_'; use letters, digits, '.' and '-'"
        );
    }
}
