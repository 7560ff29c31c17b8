use super::*;

const MAX: usize = 2048;

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn typical_service_uris_are_accepted() {
    for uri in [
        "tcp://10.0.0.1:5432",
        "http://[::1]:8080/x?y=1#z",
        "urn:isbn:0451450523",
        "unix:/run/x.sock",
        "https://api.example.com/v1/users?limit=10&offset=0",
        "postgres://user:p%40ss@db-1.internal:5432/app",
        "udp://239.0.0.1:9000",
        "grpc+tls://svc.example:443",
        "mailto:ops@example.com",
        "http://x/a%20b",
        "x:",
    ] {
        assert_eq!(validate_uri(uri, MAX), Ok(()), "{uri}");
    }
}

#[test]
fn relative_references_have_no_scheme() {
    for uri in [
        "no-scheme",
        "/relative",
        "//host/path",
        "?q=1",
        "#frag",
        "a/b:c",
    ] {
        assert_eq!(validate_uri(uri, MAX), Err(UriError::NoScheme), "{uri}");
    }
    assert!(
        UriError::NoScheme
            .to_string()
            .contains("a service URI must be absolute")
    );
}

#[test]
fn empty_is_refused() {
    assert_eq!(validate_uri("", MAX), Err(UriError::Empty));
    assert_eq!(validate_uri("", 0), Err(UriError::Empty));
    assert_eq!(UriError::Empty.to_string(), "invalid URI: the URI is empty");
}

#[test]
fn length_limit_is_inclusive() {
    let at_max = format!("tcp://{}", "a".repeat(100 - 6));
    assert_eq!(at_max.len(), 100);
    assert_eq!(validate_uri(&at_max, 100), Ok(()));
    let over = format!("{at_max}a");
    let err = validate_uri(&over, 100).unwrap_err();
    assert_eq!(err, UriError::TooLong { len: 101, max: 100 });
    assert_eq!(
        err.to_string(),
        "invalid URI: 101 bytes long, more than the maximum of 100 bytes"
    );
}

#[test]
fn whitespace_and_control_characters_are_refused() {
    let err = validate_uri("http://a b", MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid URI "http://a b": space at byte 8; it must be percent-encoded"#
    );
    let err = validate_uri("ht tp://x", MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid URI "ht tp://x": space at byte 2; it must be percent-encoded"#
    );
    let err = validate_uri("tcp://x\n", MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid URI "tcp://x\n": whitespace character U+000A at byte 7; it must be percent-encoded"#
    );
    let err = validate_uri("tcp://x\0y", MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid URI "tcp://x\0y": control character U+0000 at byte 7; it must be percent-encoded"#
    );
    for uri in [
        "tcp://x\t",
        "tcp://x\u{7f}",
        "tcp://x\u{85}",
        "tcp://x\u{a0}",
    ] {
        assert!(
            matches!(validate_uri(uri, MAX), Err(UriError::Syntax { .. })),
            "{uri:?}"
        );
    }
}

#[test]
fn non_ascii_is_refused() {
    let err = validate_uri("http://café.example/", MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid URI "http://café.example/": non-ASCII character 'é' at byte 10; it must be percent-encoded"#
    );
}

#[test]
fn grammar_errors_name_the_problem() {
    let err = validate_uri("http://%zz", MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid URI "http://%zz": invalid percent-encoding: '%' must be followed by two hex digits at byte 7"#
    );
    let err = validate_uri("http://[1::2::3]/", MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid URI "http://[1::2::3]/": invalid IPv6 address at byte 8"#
    );
    let err = validate_uri("http://[::g]/", MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid URI "http://[::g]/": unexpected character 'g' at byte 10"#
    );
    let err = validate_uri("http://x/<y>", MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid URI "http://x/<y>": unexpected character '<' at byte 9"#
    );
    for uri in [
        "1http://x",
        "://x",
        "http://x:port/",
        "http://a%2",
        "tcp://x/{a}",
        "http://x/#a#b",
        "a\\b:c",
    ] {
        assert!(
            matches!(validate_uri(uri, MAX), Err(UriError::Syntax { .. })),
            "{uri:?} -> {:?}",
            validate_uri(uri, MAX)
        );
    }
}

#[test]
fn long_uris_are_shortened_in_messages() {
    let uri = format!("http://x/{}<", "a".repeat(500));
    let msg = validate_uri(&uri, MAX).unwrap_err().to_string();
    assert!(msg.len() < 250, "{msg}");
    assert!(
        msg.contains(r#"aaa"...: unexpected character '<' at byte 509"#),
        "{msg}"
    );
}

#[test]
fn good_attributes_are_accepted() {
    assert_eq!(validate_attrs(&BTreeMap::new()), Ok(()));
    let max_key = "k".repeat(MAX_ATTR_KEY_LEN);
    let max_value = "é".repeat(MAX_ATTR_VALUE_LEN / 2);
    let a = attrs(&[
        ("version", "1.2.3"),
        ("A-Z_a.z-09", "anything: unicode ✓, spaces, \"quotes\""),
        ("empty", ""),
        (&max_key, &max_value),
    ]);
    assert_eq!(validate_attrs(&a), Ok(()));
}

#[test]
fn attribute_count_limit_is_inclusive() {
    let mut a: BTreeMap<String, String> = (0..MAX_ATTRS)
        .map(|i| (format!("k{i}"), "v".to_owned()))
        .collect();
    assert_eq!(validate_attrs(&a), Ok(()));
    a.insert("one-more".to_owned(), String::new());
    let err = validate_attrs(&a).unwrap_err();
    assert_eq!(err, AttrError::TooMany { count: 65, max: 64 });
    assert_eq!(
        err.to_string(),
        "invalid attributes: 65 attributes, more than the maximum of 64"
    );
}

#[test]
fn bad_keys_are_refused() {
    assert_eq!(
        validate_attrs(&attrs(&[("", "v")])),
        Err(AttrError::EmptyKey)
    );
    let long = "k".repeat(MAX_ATTR_KEY_LEN + 1);
    assert!(matches!(
        validate_attrs(&attrs(&[(&long, "v")])),
        Err(AttrError::KeyTooLong {
            len: 129,
            max: 128,
            ..
        })
    ));
    let err = validate_attrs(&attrs(&[("ok", "v"), ("bad key", "v")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid attribute key \"bad key\": character ' ' at byte 3; \
         keys may only contain A-Z, a-z, 0-9, '.', '_' and '-'"
    );
    for key in ["a/b", "a:b", "é", "a\nb", "a=b"] {
        assert!(
            matches!(
                validate_attrs(&attrs(&[(key, "v")])),
                Err(AttrError::KeyChar { .. })
            ),
            "{key:?}"
        );
    }
}

#[test]
fn value_limits() {
    let at_max = "v".repeat(MAX_ATTR_VALUE_LEN);
    assert_eq!(validate_attrs(&attrs(&[("k", &at_max)])), Ok(()));
    let over = format!("{at_max}v");
    let err = validate_attrs(&attrs(&[("k", &over)])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value of attribute \"k\": 4097 bytes long, more than the maximum of 4096"
    );
    // Multi-byte characters count in bytes.
    let wide = "é".repeat(MAX_ATTR_VALUE_LEN / 2 + 1);
    assert!(matches!(
        validate_attrs(&attrs(&[("k", &wide)])),
        Err(AttrError::ValueTooLong { len: 4098, .. })
    ));
}

#[test]
fn control_characters_in_values_are_refused() {
    let err = validate_attrs(&attrs(&[("k", "line\nbreak")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value of attribute \"k\": control character U+000A at byte 4"
    );
    for value in ["\0", "tab\t", "del\u{7f}", "c1\u{9b}"] {
        assert!(
            matches!(
                validate_attrs(&attrs(&[("k", value)])),
                Err(AttrError::ValueControl { .. })
            ),
            "{value:?}"
        );
    }
}
