use super::*;
use proptest::prelude::*;

const LIMIT: usize = 1 << 20;

fn re(pattern: &str) -> Regex {
    compile(pattern, LIMIT).unwrap()
}

fn matcher(patterns: &[(SubKey, &str)]) -> Matcher {
    let mut m = Matcher::new();
    for &(key, pattern) in patterns {
        m.insert(key, re(pattern));
    }
    m
}

fn run(m: &mut Matcher, uri: &str) -> Vec<SubKey> {
    let mut out = vec![999_999];
    m.matches(uri, &mut out);
    out
}

fn literals(pattern: &str) -> Option<(Vec<String>, bool)> {
    match Plan::of(pattern) {
        Plan::Scan => None,
        Plan::Literals { literals, anchored } => Some((
            literals
                .into_iter()
                .map(|(l, _)| String::from_utf8_lossy(&l).into_owned())
                .collect(),
            anchored,
        )),
    }
}

#[test]
fn plans() {
    let lits = |v: &[&str], anchored| Some((v.iter().map(|s| s.to_string()).collect(), anchored));
    assert_eq!(literals("^tcp://svc-1\\."), lits(&["tcp://svc-1."], true));
    assert_eq!(literals("/v1/"), lits(&["/v1/"], false));
    assert_eq!(
        literals("^(http|https)://a"),
        lits(&["http://a", "https://a"], true)
    );
    assert_eq!(literals("[a-c]x"), lits(&["ax", "bx", "cx"], false));
    assert_eq!(literals("^a|b"), lits(&["a", "b"], false));
    assert_eq!(literals("(?i)ab"), lits(&["AB", "Ab", "aB", "ab"], false));
    assert_eq!(literals(""), None);
    assert_eq!(literals(".*"), None);
    assert_eq!(literals("^"), None);
    assert_eq!(literals("a|"), None);
    assert_eq!(literals("a?b"), lits(&["ab", "b"], false));
    assert_eq!(literals(".x"), None);
    assert_eq!(literals("[^a]"), None);
    // Cannot match at all: nothing to index, so scanned.
    assert_eq!(literals("[a&&b]"), None);
    // Too many case variants: shortened until they fit.
    let (lits, anchored) = literals("^(?i)kubernetes-service").unwrap();
    assert!(anchored);
    assert!(lits.len() <= MAX_LITERALS_PER_REGEX, "{lits:?}");
    assert!(lits.iter().all(|l| !l.is_empty()));
}

/// Whether each literal's occurrence proves a match, for `pattern`.
fn proofs(pattern: &str) -> Vec<bool> {
    match Plan::of(pattern) {
        Plan::Scan => Vec::new(),
        Plan::Literals { literals, .. } => literals.into_iter().map(|(_, p)| p).collect(),
    }
}

#[test]
fn proofs_need_exact_literals_and_no_look_around_but_a_leading_start() {
    assert_eq!(proofs(r"^tcp://svc-1\."), [true]);
    assert_eq!(proofs("/v2/(orders|o7)"), [true, true]);
    assert_eq!(proofs("^(http|https)://a"), [true, true]);
    assert_eq!(proofs("(?i)ab"), [true; 4]);
    assert_eq!(proofs("ab.*"), [false]);
    assert_eq!(proofs("ab+"), [false]);
    assert_eq!(proofs("a$"), [false]);
    assert_eq!(proofs("a^b"), [false]);
    assert_eq!(proofs("^a^b"), [false]);
    assert_eq!(proofs(r"\bfoo"), [false]);
    assert_eq!(proofs("^a|b"), [false, false]);
    assert_eq!(proofs("(?m)^a"), [false]);
    // Shortened literals prove nothing.
    assert!(proofs("(?i)kubernetes").iter().all(|p| !p));
}

#[test]
fn empty_matcher() {
    let mut m = Matcher::new();
    assert!(m.is_empty());
    assert_eq!(m.len(), 0);
    assert_eq!(run(&mut m, "tcp://x"), Vec::<SubKey>::new());
    assert!(Matcher::default().is_empty());
}

#[test]
fn anchored_and_unanchored() {
    let mut m = matcher(&[(1, "^tcp://"), (2, "tcp://"), (3, "x$"), (4, "^x")]);
    assert_eq!(run(&mut m, "tcp://a"), [1, 2]);
    assert_eq!(run(&mut m, "mtcp://a"), [2]);
    assert_eq!(run(&mut m, "tcp://x"), [1, 2, 3]);
    assert_eq!(run(&mut m, "x:tcp://"), [2, 4]);
    assert_eq!(run(&mut m, "u:y"), Vec::<SubKey>::new());
}

#[test]
fn anchored_literal_found_later_in_the_uri() {
    // The literal occurs twice; only the occurrence at 0 counts for `^`.
    let mut m = matcher(&[(1, "^ab"), (2, "ab")]);
    assert_eq!(run(&mut m, "xab"), [2]);
    assert_eq!(run(&mut m, "abab"), [1, 2]);
    assert_eq!(run(&mut m, "xabab"), [2]);
}

#[test]
fn alternations() {
    let mut m = matcher(&[(7, "^(http|https)://a"), (8, "^http://b|://c")]);
    assert_eq!(run(&mut m, "http://a/x"), [7]);
    assert_eq!(run(&mut m, "https://a"), [7]);
    assert_eq!(run(&mut m, "ftp://a"), Vec::<SubKey>::new());
    assert_eq!(run(&mut m, "http://b"), [8]);
    assert_eq!(run(&mut m, "ftp://c"), [8]);
    assert_eq!(run(&mut m, "x http://b"), Vec::<SubKey>::new());
}

#[test]
fn case_insensitive() {
    let mut m = matcher(&[
        (1, "(?i)^TCP://SVC"),
        (2, "(?i)kubernetes-service"),
        (3, "Svc"),
    ]);
    assert_eq!(run(&mut m, "tcp://svc-1"), [1]);
    assert_eq!(run(&mut m, "Tcp://sVc-1"), [1]);
    assert_eq!(run(&mut m, "http://KUBERNETES-Service/"), [2]);
    assert_eq!(run(&mut m, "http://x/Svc"), [3]);
    // Unicode simple case folding: the Kelvin sign folds to k.
    assert_eq!(run(&mut m, "http://\u{212a}ubernetes-service"), [2]);
}

#[test]
fn match_everything_patterns() {
    let mut m = matcher(&[(1, ""), (2, ".*"), (3, "^"), (4, "a")]);
    assert_eq!(m.unindexed_len(), 3);
    assert_eq!(run(&mut m, "a:b"), [1, 2, 3, 4]);
    assert_eq!(run(&mut m, "b:"), [1, 2, 3]);
    assert_eq!(run(&mut m, ""), [1, 2, 3]);
}

#[test]
fn classes() {
    let mut m = matcher(&[(1, "[a-c]x"), (2, "[^a-c]x"), (3, r"\d+\.")]);
    assert_eq!(run(&mut m, "u:bx"), [1]);
    assert_eq!(run(&mut m, "u:bxzx"), [1, 2]);
    assert_eq!(run(&mut m, "cx"), [1]);
    assert_eq!(run(&mut m, "dx"), [2]);
    assert_eq!(run(&mut m, "tcp://10.0.0.1"), [3]);
}

#[test]
fn remove_and_replace() {
    let mut m = matcher(&[(1, "^a"), (2, "b"), (3, ".*")]);
    assert_eq!(m.len(), 3);
    assert_eq!(run(&mut m, "ab"), [1, 2, 3]);
    assert!(m.remove(2));
    assert!(!m.remove(2));
    assert!(!m.remove(42));
    assert_eq!(m.len(), 2);
    assert_eq!(run(&mut m, "ab"), [1, 3]);
    // Replace a literal pattern by another.
    m.insert(1, re("^b"));
    assert_eq!(m.len(), 2);
    assert_eq!(run(&mut m, "ab"), [3]);
    assert_eq!(run(&mut m, "ba"), [1, 3]);
    // Replace an unindexed pattern by a literal one and back.
    m.insert(3, re("^z"));
    assert_eq!(m.unindexed_len(), 0);
    assert_eq!(run(&mut m, "ab"), Vec::<SubKey>::new());
    m.insert(1, re("a*"));
    assert_eq!(run(&mut m, "q"), [1]);
    // Freed slots are reused, keys stay distinct.
    m.insert(10, re("q"));
    m.insert(5, re("q"));
    assert_eq!(run(&mut m, "q"), [1, 5, 10]);
    assert!(m.remove(1) && m.remove(3) && m.remove(5) && m.remove(10));
    assert!(m.is_empty());
    assert_eq!(run(&mut m, "q"), Vec::<SubKey>::new());
}

#[test]
fn output_is_sorted_by_key_and_unique() {
    let mut m = Matcher::new();
    // Inserted out of order, several literals of one pattern present at once.
    for key in [50, 3, 900, 7, 1] {
        m.insert(key, re("(a|b|ab|ba)"));
    }
    m.insert(2, re(".*"));
    assert_eq!(run(&mut m, "abab"), [1, 2, 3, 7, 50, 900]);
}

#[test]
fn unindexed_patterns_in_a_set_one_by_one_and_pending() {
    for (set_limit, set) in [(SCAN_SET_SIZE_LIMIT, true), (1, false)] {
        let mut m = Matcher::new();
        m.min_pending = 0;
        m.scan_set_size_limit = set_limit;
        for (key, pattern) in [(1, ".*a"), (2, "b?$"), (3, ".c"), (4, "d")] {
            m.insert(key, re(pattern));
        }
        assert_eq!(m.unindexed_len(), 3);
        assert_eq!(run(&mut m, "xa"), [1, 2]);
        assert_eq!(matches!(m.scan_base, ScanIndex::Set { .. }), set);
        assert_eq!(matches!(m.scan_base, ScanIndex::Each(_)), !set);
        assert_eq!(run(&mut m, "xcd"), [2, 3, 4]);
        // Below the rebuild threshold: new ones are pending, removed ones
        // stay in the base but are skipped.
        m.min_pending = 100;
        m.insert(5, re("x*"));
        m.insert(3, re(".x"));
        assert!(m.remove(1));
        assert_eq!(m.scan_state.pending.len(), 2);
        assert_eq!(m.scan_state.garbage, 2);
        assert_eq!(run(&mut m, "axa"), [2, 3, 5]);
        assert_eq!(run(&mut m, "ca"), [2, 5]);
    }
}

#[test]
fn literal_tiers_base_delta_and_rebuild() {
    let mut m = Matcher::new();
    m.min_pending = 2;
    for k in 0..10 {
        m.insert(k, re(&format!("^s{k}/")));
    }
    assert_eq!(run(&mut m, "s3/x"), [3]);
    assert_eq!(m.literal_state.base_len, 10);
    assert!(m.literal_state.pending.is_empty());
    // sqrt(10) + 2 = 5 changes fit before a rebuild.
    m.insert(20, re("/x"));
    m.insert(3, re("^s3/y"));
    assert!(m.remove(4));
    assert_eq!(run(&mut m, "s3/x"), [20]);
    assert_eq!(run(&mut m, "s4/x"), [20]);
    assert_eq!(run(&mut m, "s3/y"), [3]);
    assert_eq!(m.literal_state.pending.len(), 2);
    assert_eq!(m.literal_state.garbage, 2);
    assert_eq!(m.literal_state.base_len, 10);
    // Replacing a pending entry keeps one pending member.
    m.insert(20, re("/z"));
    assert_eq!(m.literal_state.pending.len(), 2);
    assert_eq!(run(&mut m, "s3/z"), [20]);
    // The slot freed by 4 is reused by 30; the stale base target for 4's
    // literal must not report it.
    m.insert(30, re("^q"));
    assert_eq!(run(&mut m, "s4/"), Vec::<SubKey>::new());
    assert_eq!(run(&mut m, "q"), [30]);
    // Over the threshold: everything goes into a fresh base.
    m.insert(31, re("^r"));
    m.insert(32, re("^t"));
    assert_eq!(run(&mut m, "r s3/y"), [31]);
    assert!(m.literal_state.pending.is_empty());
    assert_eq!(m.literal_state.garbage, 0);
    assert_eq!(m.literal_state.base_len, 13);
    assert_eq!(run(&mut m, "s3/y"), [3]);
}

#[test]
fn epoch_wrap_resets_marks() {
    let mut m = matcher(&[(1, "^a"), (2, "b"), (3, ".*")]);
    assert_eq!(run(&mut m, "ab"), [1, 2, 3]);
    m.scratch.epoch = u32::MAX - 1;
    for _ in 0..3 {
        assert_eq!(run(&mut m, "ab"), [1, 2, 3]);
        assert_eq!(run(&mut m, "b"), [2, 3]);
    }
    assert!(m.scratch.epoch < 10);
}

#[test]
fn regex_built_elsewhere_too_deep_for_the_index_is_scanned() {
    let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
    let mut m = Matcher::new();
    m.insert(1, Regex::new(&deep).unwrap());
    assert_eq!(m.unindexed_len(), 1);
    assert_eq!(run(&mut m, "xa"), [1]);
    assert_eq!(run(&mut m, "x"), Vec::<SubKey>::new());
}

#[test]
fn compile_refuses_oversized_patterns() {
    let err = compile("a{1000}{1000}", 10_000).unwrap_err();
    assert!(matches!(err, RegexError::TooLarge(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "regex too large: \"a{1000}{1000}\" compiles to more than the limit of 10000 bytes; \
         use fewer or smaller repetitions and narrower classes"
    );
    assert!(compile("a{10}", 10_000).is_ok());
}

#[test]
fn compile_refuses_syntax_errors_readably() {
    let err = compile("(abc", LIMIT).unwrap_err();
    assert!(matches!(err, RegexError::Invalid(_)));
    assert_eq!(
        err.to_string(),
        "invalid regex: unclosed group, at byte 0 of \"(abc\""
    );
    let err = compile("^tcp://[a-", LIMIT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid regex: unclosed character class, at byte 7 of \"^tcp://[a-\""
    );
    let err = compile("*a", LIMIT).unwrap_err();
    assert!(err.to_string().starts_with("invalid regex: "), "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
    let err = compile(r"\p{Nope}", LIMIT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid regex: Unicode property not found, at byte 0 of \"\\\\p{Nope}\""
    );
}

#[test]
fn compile_refuses_deep_nesting_without_overflowing_the_stack() {
    for depth in [65, 1_000, 100_000] {
        let deep = format!("{}a{}", "(".repeat(depth), ")".repeat(depth));
        let err = compile(&deep, LIMIT).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("invalid regex: "), "{msg}");
        assert!(msg.contains("nest"), "{msg}");
        assert!(msg.len() < 300, "long pattern must be shortened: {msg}");
    }
    let shallow = format!("{}a{}", "(".repeat(20), ")".repeat(20));
    assert!(compile(&shallow, LIMIT).is_ok());
}

#[test]
fn compile_is_unanchored() {
    let r = re("b");
    assert!(r.is_match("abc"));
    assert!(!re("^b").is_match("abc"));
}

/// Brute force: every regex's own `is_match`.
fn expected(subs: &BTreeMap<SubKey, Regex>, uri: &str) -> Vec<SubKey> {
    subs.iter()
        .filter(|(_, r)| r.is_match(uri))
        .map(|(&k, _)| k)
        .collect()
}

/// Small patterns over the alphabet of [`uri_strategy`], built from
/// literals, `.`, classes, groups, alternations, `*`, `?`, `+`, anchors and
/// `(?i)`.
fn pattern_strategy() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "A", "/", ":", "ab", "ba", "a/"])
            .prop_map(str::to_owned),
        1 => Just(".".to_owned()),
        1 => prop::sample::select(vec!["[ab]", "[^a]", "[a-b]", "[/:]", "[A-Z]"])
            .prop_map(str::to_owned),
    ];
    let expr = atom.prop_recursive(3, 24, 3, |inner| {
        let piece = (
            inner.clone(),
            prop::sample::select(vec!["", "", "", "", "", "*", "?", "+"]),
        )
            .prop_map(|(a, q)| {
                if q.is_empty() || a.chars().count() == 1 || a.starts_with('[') {
                    format!("{a}{q}")
                } else {
                    format!("({a}){q}")
                }
            });
        prop_oneof![
            3 => prop::collection::vec(piece.clone(), 1..4).prop_map(|v| v.concat()),
            1 => prop::collection::vec(piece.clone(), 2..4).prop_map(|v| v.join("|")),
            1 => piece.prop_map(|p| format!("({p})")),
            1 => (inner.clone(), prop::sample::select(vec!["^", "$"]))
                .prop_map(|(a, anchor)| if anchor == "^" { format!("^{a}") } else { format!("{a}$") }),
        ]
    });
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::weighted(0.9, expr),
        any::<bool>(),
        prop::option::weighted(
            0.2,
            prop::collection::vec(prop::sample::select(vec!["a", "b", "/", ":"]), 1..3),
        ),
    )
        .prop_map(|(ci, start, body, end, alt)| {
            let mut p = String::new();
            if ci {
                p.push_str("(?i)");
            }
            if start {
                p.push('^');
            }
            p.push_str(&body.unwrap_or_default());
            if end {
                p.push('$');
            }
            if let Some(alt) = alt {
                p = format!("{p}|{}", alt.concat());
            }
            p
        })
}

fn uri_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'b', 'A', 'B', '/', ':']),
        0..10,
    )
    .prop_map(|v| v.into_iter().collect())
}

#[derive(Debug, Clone)]
enum Op {
    Insert(SubKey, String),
    Remove(SubKey),
    Match(String),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..12u64, pattern_strategy()).prop_map(|(k, p)| Op::Insert(k, p)),
        1 => (0..12u64).prop_map(Op::Remove),
        4 => uri_strategy().prop_map(Op::Match),
    ]
}

/// The generated patterns must exercise both the literal index (anchored
/// and not) and the unindexed path, or the comparisons below prove little.
#[test]
fn pattern_generator_covers_every_plan() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = pattern_strategy();
    let (mut anchored, mut anywhere, mut scan) = (0, 0, 0);
    for _ in 0..1000 {
        let pattern = strategy.new_tree(&mut runner).unwrap().current();
        assert!(compile(&pattern, LIMIT).is_ok(), "{pattern}");
        match Plan::of(&pattern) {
            Plan::Literals { anchored: true, .. } => anchored += 1,
            Plan::Literals {
                anchored: false, ..
            } => anywhere += 1,
            Plan::Scan => scan += 1,
        }
    }
    println!("anchored {anchored}, anywhere {anywhere}, scan {scan}");
    assert!(
        anchored > 100 && anywhere > 100 && scan > 100,
        "anchored {anchored}, anywhere {anywhere}, scan {scan}"
    );
}

#[test]
fn literal_patterns_skip_the_regex_engine() {
    for (pattern, literal) in [
        (r"^tcp://svc-1\.", true),
        ("/v2/", true),
        ("^(http|https)://api/", true),
        (r"^tcp://svc-1\.[a-z]", false),
        (r"/v2/\b", false),
        ("(?i)abc", true),
        (".*", false),
    ] {
        let p = Pattern::compile(pattern, LIMIT).expect(pattern);
        assert_eq!(p.is_literal(), literal, "{pattern}");
        assert_eq!(p.as_str(), pattern);
        assert_eq!(
            Pattern::from(re(pattern)).is_literal(),
            literal,
            "{pattern}"
        );
    }
    let p = Pattern::compile("^(http|https)://api/", LIMIT).unwrap();
    assert!(p.is_match("https://api/x") && p.is_match("http://api/"));
    assert!(!p.is_match("x http://api/") && !p.is_match("http://apx/"));
    let p = Pattern::compile("/v2/", LIMIT).unwrap();
    assert!(p.is_match("tcp://a/v2/") && !p.is_match("tcp://a/v2"));
    assert!(matches!(
        Pattern::compile("abcdefgh", 4),
        Err(RegexError::TooLarge(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn patterns_match_as_their_regex(
        pattern in pattern_strategy(),
        uris in prop::collection::vec(uri_strategy(), 1..16),
    ) {
        let r = compile(&pattern, LIMIT).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let p = Pattern::compile(&pattern, LIMIT).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for uri in &uris {
            prop_assert_eq!(p.is_match(uri), r.is_match(uri), "{} on {}", pattern, uri);
        }
    }

    #[test]
    fn matches_agrees_with_brute_force(
        patterns in prop::collection::vec(pattern_strategy(), 1..16),
        uris in prop::collection::vec(uri_strategy(), 1..16),
    ) {
        let mut m = Matcher::new();
        let mut subs = BTreeMap::new();
        for (i, p) in patterns.iter().enumerate() {
            let r = compile(p, LIMIT).map_err(|e| TestCaseError::fail(e.to_string()))?;
            m.insert(i as SubKey, r.clone());
            subs.insert(i as SubKey, r);
        }
        let mut out = Vec::new();
        for uri in &uris {
            m.matches(uri, &mut out);
            prop_assert_eq!(&out, &expected(&subs, uri), "uri {:?}, patterns {:?}", uri, patterns);
        }
    }

    #[test]
    fn matches_agrees_with_brute_force_under_churn(
        ops in prop::collection::vec(op_strategy(), 1..60),
        min_pending in prop::sample::select(vec![0usize, 1, 3, 1000]),
        set_limit in prop::sample::select(vec![1usize, SCAN_SET_SIZE_LIMIT]),
    ) {
        let mut m = Matcher::new();
        m.min_pending = min_pending;
        m.scan_set_size_limit = set_limit;
        let mut subs = BTreeMap::new();
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Insert(k, p) => {
                    let r = compile(&p, LIMIT).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    m.insert(k, r.clone());
                    subs.insert(k, r);
                }
                Op::Remove(k) => prop_assert_eq!(m.remove(k), subs.remove(&k).is_some()),
                Op::Match(uri) => {
                    m.matches(&uri, &mut out);
                    let want = expected(&subs, &uri);
                    let patterns: Vec<_> = subs.iter().map(|(k, r)| (*k, r.as_str().to_owned())).collect();
                    prop_assert_eq!(&out, &want, "uri {:?}, subs {:?}", uri, patterns);
                }
            }
            prop_assert_eq!(m.len(), subs.len());
        }
    }
}

#[test]
fn the_memory_estimate_grows_with_what_the_regex_compiles_to() {
    let measure = |p: &str| compile_measured(p, LIMIT).expect(p).memory;
    let literal = measure(r"^tcp://svc-1\.");
    let digits = measure(r"\d+x1-2");
    let word = measure(r"\w+-1-2");
    let prefix = measure(r"^tcp://svc-1\.[a-z]");
    assert!(
        literal < 512,
        "a literal prefix needs no regex engine: {literal}"
    );
    assert!(prefix >= MEMORY_PER_REGEX, "{prefix}");
    assert!(
        prefix < 32 << 10,
        "a literal prefix then a class is cheap: {prefix}"
    );
    // Unicode classes compile to large automata: the costly subscriptions
    // of the hostile-load report (about 100 KiB each once matching;
    // docs/RELIABILITY.md §6 Hostile load, Memory).
    assert!(digits > literal, "{digits} vs {literal}");
    assert!(word > 4 * digits, "{word} vs {digits}");
    assert!((64 << 10..256 << 10).contains(&word), "{word}");
    assert_eq!(
        compile_measured(r"^tcp://svc-1\.", LIMIT)
            .expect("compiles")
            .pattern
            .as_str(),
        r"^tcp://svc-1\."
    );
}

#[test]
fn the_measured_compile_refuses_what_compile_refuses() {
    for (pattern, limit) in [("(abc", LIMIT), ("a{1000}{1000}", 10_000)] {
        assert_eq!(
            compile_measured(pattern, limit).unwrap_err().to_string(),
            compile(pattern, limit).unwrap_err().to_string()
        );
    }
}
