//! Routing a service URI to the subscriptions whose regular expression
//! matches it, without running every subscription's regex on every event.
//!
//! Most subscription patterns start with something literal:
//! `^tcp://svc-12\.`, `^(http|https)://api/`, `/v2/`. For each pattern the
//! [`Matcher`] asks `regex-syntax` for its *prefix literals*: a finite set
//! of strings such that every match of the pattern begins with one of them.
//! Since a subscription matches when its regex matches anywhere in the URI,
//! a URI can only match if it *contains* one of those literals (at offset 0
//! when the pattern is anchored with `^`). The literals of all
//! subscriptions go into an Aho-Corasick automaton; an event runs that
//! automaton over the URI, collects the subscriptions whose literals
//! occur, and confirms only those with their own regex. Patterns without a
//! usable literal (`.*`, the empty pattern, `\d+x`, a class or case-folded
//! prefix with too many variants) are *unindexed*: they are checked on every
//! event, together, through one `RegexSet`.
//!
//! An automaton hit on an *exact* literal of a pattern that has no
//! look-around assertion (or only a leading `^`, hit at offset 0) proves the
//! match by itself, so the commonest subscriptions, plain literal prefixes,
//! never run their regex at all; when every literal of a pattern is such a
//! proof, no regex is even built ([`Pattern`], in `pattern.rs`), which
//! saves the regex crate's automata (about 6 KiB of heap for
//! `^tcp://idle/1/`).
//!
//! Inserting and removing do no indexing work: they record the change, and
//! the next [`Matcher::matches`] brings the index up to date. To keep that
//! cheap under churn the literal index has two tiers: a *base* automaton
//! over most subscriptions and a small *delta* automaton over those
//! inserted since the base was built. A removed or replaced subscription
//! stays in the base until its next rebuild but is skipped (each index
//! entry names the generation of the subscription it was built for). The
//! base is rebuilt once the changes since its last build exceed
//! `16 + sqrt(base size)`; otherwise only the delta is. Unindexed
//! subscriptions work the same way: a base `RegexSet`, recent ones checked
//! one by one.
//!
//! Cost model, for a URI of length `L`, `S` subscriptions of which `U` are
//! unindexed, and `C` candidates whose literal occurs in the URI: per event,
//! two automaton passes, `O(L + hits)` whatever `S`; at most `C` regex
//! confirmations, each `O(L)` (none for proven hits); one `RegexSet` pass
//! over the base unindexed patterns plus one regex per recent one; then
//! sorting the `M <= C + U` matches, `O(M log M)`. Distinct literal
//! patterns keep `C` close to the number of real matches. Per change, an
//! amortized `O(sqrt S)` of rebuilding: the delta automaton is rebuilt over
//! at most `16 + sqrt(S)` subscriptions after each change, the base over
//! all `S` (total literal bytes) every `16 + sqrt(S)` changes; the
//! `RegexSet` base recompiles all `U` unindexed patterns every
//! `16 + sqrt(U)` changes to them. A burst of changes between two events
//! costs at most one rebuild of each. Measured (release build, 2 cores):
//! with 10,000 literal-prefix subscriptions of which 1,000 match, a URI
//! takes about 18 us (4.5 ms when running every regex) and a URI matching none
//! about 0.3 us; alternating one insert and one event costs about 170 us
//! per pair, amortized.
//!
//! [`compile`] is how client patterns become regexes: it bounds the
//! compiled size and the nesting depth, and explains refusals in one line.
//! [`compile_measured`] also estimates the memory a subscription's regex
//! holds, for the node-wide `limits.regex_memory_bytes`.

pub mod pattern;

use std::collections::{BTreeMap, HashMap};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use regex_automata::nfa::thompson;
use regex_syntax::hir::{
    Hir, HirKind, Look,
    literal::{ExtractKind, Extractor},
};

/// Identifies one subscription in a [`Matcher`].
pub type SubKey = u64;

/// Deepest nesting of groups, classes and repetitions [`compile`] accepts.
/// Bounding it keeps every recursive walk over the pattern shallow.
pub const NEST_LIMIT: u32 = 64;

/// Most prefix literals indexed for one pattern. Beyond this (for instance
/// `(?i)` on a long word), literals are shortened until they fit, and the
/// pattern becomes unindexed if even one-byte literals are too many.
pub const MAX_LITERALS_PER_REGEX: usize = 64;

/// Size limit of the `RegexSet` over unindexed patterns (compiled bytes).
/// If they do not fit, they are checked one by one instead.
const SCAN_SET_SIZE_LIMIT: usize = 32 << 20;

/// Longest rendering of a pattern quoted inside an error message.
const QUOTE_MAX: usize = 120;

/// Estimated bytes a compiled regex and its matching caches hold, per byte
/// of its forward Thompson NFA. The `regex` crate builds several engines
/// from one pattern (forward and reverse NFAs, a one-pass DFA, lazy DFAs
/// whose caches fill as it matches) and reports none of their sizes; the
/// forward NFA is what they all grow with. Checked on the daemon (debug
/// build, 1,920 subscriptions of one shape over 20 services each time):
/// the RSS a subscription added was its estimate plus 4.5 to 7.6 KiB (its
/// actor and queue, which the estimate leaves out) for `\w+-C-I` (estimate
/// 97.8 KiB), `\d+xC-I` (18.2), `^tcp://svc-C-I\.` (13.1),
/// `(?i)[a-z]+\.C\.I` (12.7) and `.*fooCxI.*bar` (15.5).
pub const MEMORY_PER_NFA_BYTE: usize = 5;

/// The fixed part of the estimate: the pattern's `Regex` handle, its cache
/// pool and the smallest caches.
pub const MEMORY_PER_REGEX: usize = 8 * 1024;

/// Why a subscription pattern was refused. The `Display` is sent to the
/// client as is.
#[derive(Debug, thiserror::Error)]
pub enum RegexError {
    /// Not a valid regular expression (the text says what and where).
    #[error("invalid regex: {0}")]
    Invalid(String),
    /// Valid, but its compiled form exceeds the size limit.
    #[error("regex too large: {0}")]
    TooLarge(String),
}

/// Compiles a subscription pattern with bounded resources: compiled size
/// and lazy-DFA cache at most `size_limit` bytes each, nesting at most
/// [`NEST_LIMIT`] deep. The result has the usual unanchored semantics
/// (`Regex::is_match` matches anywhere in the URI; use `^`/`$` to anchor).
///
/// # Errors
///
/// [`RegexError::Invalid`] for a syntax error (with the problem and its byte
/// offset), [`RegexError::TooLarge`] when the compiled form would exceed
/// `size_limit`.
pub fn compile(pattern: &str, size_limit: usize) -> Result<Regex, RegexError> {
    parse(pattern)?;
    build(pattern, size_limit)
}

pub use pattern::Pattern;

/// A subscription's pattern and the memory it is estimated to hold.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The pattern, as [`Pattern::compile`] makes it.
    pub pattern: Pattern,
    /// Estimated bytes held by the pattern: for literals, their bytes
    /// ([`Pattern::literal_memory`]); for a regex and its caches once it
    /// has been used, [`MEMORY_PER_NFA_BYTE`] times its forward NFA, plus
    /// [`MEMORY_PER_REGEX`].
    pub memory: usize,
}

/// [`Pattern::compile`], plus an estimate of the memory it will hold.
/// For a regex the estimate costs one more NFA compilation, from the
/// syntax tree already parsed and within the same `size_limit`.
///
/// # Errors
///
/// As [`compile`].
pub fn compile_measured(pattern: &str, size_limit: usize) -> Result<Measured, RegexError> {
    let compiled = Pattern::compile(pattern, size_limit)?;
    if let Some(memory) = compiled.literal_memory() {
        return Ok(Measured {
            pattern: compiled,
            memory,
        });
    }
    let hir = parse(pattern)?;
    let nfa_bytes = thompson::Compiler::new()
        .configure(thompson::Config::new().nfa_size_limit(Some(size_limit)))
        .build_from_hir(&hir)
        .map_or(size_limit, |nfa| nfa.memory_usage());
    let memory = nfa_bytes
        .saturating_mul(MEMORY_PER_NFA_BYTE)
        .saturating_add(MEMORY_PER_REGEX)
        .saturating_add(pattern.len());
    Ok(Measured {
        pattern: compiled,
        memory,
    })
}

/// Parses first: regex-syntax's structured errors give a one-line message.
fn parse(pattern: &str) -> Result<Hir, RegexError> {
    regex_syntax::ParserBuilder::new()
        .nest_limit(NEST_LIMIT)
        .build()
        .parse(pattern)
        .map_err(|e| RegexError::Invalid(describe_syntax_error(pattern, &e)))
}

fn build(pattern: &str, size_limit: usize) -> Result<Regex, RegexError> {
    RegexBuilder::new(pattern)
        .size_limit(size_limit)
        .dfa_size_limit(size_limit)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => too_large(pattern, limit),
            other => RegexError::Invalid(format!(
                "{}: {}",
                quote(pattern),
                last_line(&other.to_string())
            )),
        })
}

fn too_large(pattern: &str, limit: usize) -> RegexError {
    RegexError::TooLarge(format!(
        "{} compiles to more than the limit of {limit} bytes; \
         use fewer or smaller repetitions and narrower classes",
        quote(pattern)
    ))
}

fn describe_syntax_error(pattern: &str, e: &regex_syntax::Error) -> String {
    let (what, offset) = match e {
        regex_syntax::Error::Parse(e) => (e.kind().to_string(), e.span().start.offset),
        regex_syntax::Error::Translate(e) => (e.kind().to_string(), e.span().start.offset),
        other => (last_line(&other.to_string()).to_owned(), 0),
    };
    format!("{what}, at byte {offset} of {}", quote(pattern))
}

/// The line of a multi-line regex error that says what is wrong.
fn last_line(msg: &str) -> &str {
    let line = msg
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(msg);
    let line = line.trim();
    line.strip_prefix("error: ").unwrap_or(line)
}

/// `s` in double quotes with Rust escapes, cut after [`QUOTE_MAX`]
/// characters.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// How a pattern is found candidate for a URI.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Every match begins with one of these (non-empty, distinct) byte
    /// strings; with `anchored`, only at offset 0.
    Literals {
        /// Each literal, and whether an occurrence of it (at offset 0 when
        /// `anchored`) proves a match, so the regex need not run.
        literals: Vec<(Vec<u8>, bool)>,
        anchored: bool,
    },
    /// No usable literal: check on every URI.
    Scan,
}

impl Plan {
    /// Works out the plan for a pattern from its text. Anything unexpected
    /// (a pattern deeper than [`NEST_LIMIT`], say) yields [`Plan::Scan`],
    /// which is always correct.
    fn of(pattern: &str) -> Self {
        match regex_syntax::ParserBuilder::new()
            .nest_limit(NEST_LIMIT)
            .build()
            .parse(pattern)
        {
            Ok(hir) => Self::from_hir(&hir),
            Err(_) => Self::Scan,
        }
    }

    /// The plan for a parsed pattern.
    fn from_hir(hir: &Hir) -> Self {
        let seq = Extractor::new().kind(ExtractKind::Prefix).extract(hir);
        let Some(lits) = seq.literals() else {
            // Infinite: any string may start a match.
            return Self::Scan;
        };
        // Exact or not, each literal is a necessary prefix. An exact one is
        // moreover a whole match when look-around assertions are ignored,
        // which they can be if there are none, or only a leading `^` and
        // the occurrence is at offset 0.
        let proves = only_leading_start(hir);
        let mut set: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
        for lit in lits {
            *set.entry(lit.as_bytes().to_vec()).or_default() |= proves && lit.is_exact();
        }
        // No literal: the pattern matches nothing. An empty literal: a
        // match may start with anything.
        if set.is_empty() || set.contains_key(&[][..]) {
            return Self::Scan;
        }
        // Too many variants: shorten them (a prefix of a necessary prefix
        // is still necessary, though no longer a proof) until few enough
        // remain.
        let mut len = set.keys().map(Vec::len).max().unwrap_or(0);
        while set.len() > MAX_LITERALS_PER_REGEX && len > 1 {
            len -= 1;
            let mut shorter = BTreeMap::new();
            for (mut lit, proof) in set {
                let cut = lit.len() > len;
                lit.truncate(len);
                *shorter.entry(lit).or_default() |= proof && !cut;
            }
            set = shorter;
        }
        if set.len() > MAX_LITERALS_PER_REGEX {
            return Self::Scan;
        }
        Self::Literals {
            literals: set.into_iter().collect(),
            anchored: hir.properties().look_set_prefix().contains(Look::Start),
        }
    }

    fn is_scan(&self) -> bool {
        matches!(self, Self::Scan)
    }
}

/// True when `hir` has no look-around assertion, or only one `^` (start of
/// haystack) in front of everything else.
fn only_leading_start(hir: &Hir) -> bool {
    if hir.properties().look_set().is_empty() {
        return true;
    }
    match hir.kind() {
        HirKind::Concat(subs) => match subs.split_first() {
            Some((first, rest)) => {
                matches!(first.kind(), HirKind::Look(Look::Start))
                    && rest.iter().all(|h| h.properties().look_set().is_empty())
            }
            None => false,
        },
        _ => false,
    }
}

/// One subscription, at a stable slot.
#[derive(Debug)]
struct Entry {
    key: SubKey,
    regex: Pattern,
    plan: Plan,
    /// Unique per insertion: index targets naming an older generation of
    /// this slot are stale and skipped.
    generation: u64,
    /// Whether the entry is in its tier's base index (else it is pending).
    in_base: bool,
}

/// A reference from an index to a subscription.
#[derive(Debug, Clone, Copy)]
struct Member {
    slot: u32,
    generation: u64,
}

/// A subscription needing one automaton pattern, and whether an occurrence
/// proves that it matches.
#[derive(Debug, Clone, Copy)]
struct Target {
    member: Member,
    proven: bool,
}

/// Subscriptions needing one automaton pattern: anywhere in the URI, or
/// only at offset 0 (anchored patterns).
#[derive(Debug, Default)]
struct Targets {
    anywhere: Vec<Target>,
    at_start: Vec<Target>,
}

/// An Aho-Corasick automaton over the literals of some subscriptions.
#[derive(Debug, Default)]
struct LiteralIndex {
    /// Over every distinct literal; `None` when there is none or the
    /// automaton could not be built.
    ac: Option<AhoCorasick>,
    /// Per automaton pattern id.
    targets: Vec<Targets>,
    /// Per automaton pattern id: the epoch in which its `anywhere` and
    /// `at_start` targets were last visited.
    anywhere_seen: Vec<u32>,
    at_start_seen: Vec<u32>,
    /// Members to check one by one because the automaton could not be
    /// built (normally empty).
    unsearchable: Vec<Member>,
}

impl LiteralIndex {
    fn build<'a>(members: impl Iterator<Item = (Member, &'a Plan)>) -> Self {
        let mut ids: HashMap<&[u8], usize> = HashMap::new();
        let mut patterns: Vec<&[u8]> = Vec::new();
        let mut targets: Vec<Targets> = Vec::new();
        let mut all = Vec::new();
        for (member, plan) in members {
            let Plan::Literals { literals, anchored } = plan else {
                continue;
            };
            all.push(member);
            for (lit, proven) in literals {
                let id = *ids.entry(lit.as_slice()).or_insert_with(|| {
                    patterns.push(lit);
                    targets.push(Targets::default());
                    patterns.len() - 1
                });
                let target = Target {
                    member,
                    proven: *proven,
                };
                if *anchored {
                    targets[id].at_start.push(target);
                } else {
                    targets[id].anywhere.push(target);
                }
            }
        }
        if patterns.is_empty() {
            return Self::default();
        }
        match AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
        {
            Ok(ac) => Self {
                ac: Some(ac),
                anywhere_seen: vec![0; targets.len()],
                at_start_seen: vec![0; targets.len()],
                targets,
                unsearchable: Vec::new(),
            },
            Err(_) => Self {
                unsearchable: all,
                ..Self::default()
            },
        }
    }

    /// Pushes to `found` the slots of the live members that match `uri`.
    fn search(&mut self, uri: &str, slots: &[Option<Entry>], scratch: &mut Scratch) {
        let epoch = scratch.epoch;
        let mut confirm = |member: Member, proven: bool| {
            let Some(entry) = live(slots, member) else {
                return;
            };
            let seen = &mut scratch.slot_seen[member.slot as usize];
            if *seen != epoch {
                *seen = epoch;
                if proven || entry.regex.is_match(uri) {
                    scratch.found.push(member.slot);
                }
            }
        };
        for &member in &self.unsearchable {
            confirm(member, false);
        }
        let Some(ac) = &self.ac else {
            return;
        };
        match ac.try_find_overlapping_iter(uri) {
            Ok(hits) => {
                for hit in hits {
                    let p = hit.pattern().as_usize();
                    let targets = &self.targets[p];
                    // Each pattern's targets are visited at most once per
                    // event, however often its literal occurs.
                    if self.anywhere_seen[p] != epoch {
                        self.anywhere_seen[p] = epoch;
                        for t in &targets.anywhere {
                            confirm(t.member, t.proven);
                        }
                    }
                    if hit.start() == 0 && self.at_start_seen[p] != epoch {
                        self.at_start_seen[p] = epoch;
                        for t in &targets.at_start {
                            confirm(t.member, t.proven);
                        }
                    }
                }
            }
            // Not expected (the automaton is built for overlapping search);
            // stay correct by checking every member.
            Err(_) => {
                for targets in &self.targets {
                    for t in targets.anywhere.iter().chain(&targets.at_start) {
                        confirm(t.member, false);
                    }
                }
            }
        }
    }

    /// Forgets every visit mark (when the epoch counter wraps).
    fn reset_marks(&mut self) {
        self.anywhere_seen.fill(0);
        self.at_start_seen.fill(0);
    }
}

/// The unindexed subscriptions of the base tier.
#[derive(Debug, Default)]
enum ScanIndex {
    #[default]
    None,
    /// One pass for all; `members[i]` is set pattern `i`.
    Set { set: RegexSet, members: Vec<Member> },
    /// Too few for a set, or the set was too large: one by one.
    Each(Vec<Member>),
}

impl ScanIndex {
    fn build(members: Vec<Member>, slots: &[Option<Entry>], size_limit: usize) -> Self {
        if members.is_empty() {
            return Self::None;
        }
        if members.len() == 1 {
            return Self::Each(members);
        }
        let patterns = members
            .iter()
            .filter_map(|&m| live(slots, m))
            .map(|e| e.regex.as_str());
        match RegexSetBuilder::new(patterns)
            .size_limit(size_limit)
            .build()
        {
            Ok(set) if set.len() == members.len() => Self::Set { set, members },
            _ => Self::Each(members),
        }
    }

    /// Pushes to `found` the slots of the live members that match `uri`.
    fn search(&self, uri: &str, slots: &[Option<Entry>], found: &mut Vec<u32>) {
        match self {
            Self::None => {}
            Self::Set { set, members } => {
                for i in set.matches(uri).iter() {
                    let m = members[i];
                    if live(slots, m).is_some() {
                        found.push(m.slot);
                    }
                }
            }
            Self::Each(members) => search_each(members, uri, slots, found),
        }
    }
}

/// Pushes to `found` the slots of the live `members` that match `uri`,
/// running each regex.
fn search_each(members: &[Member], uri: &str, slots: &[Option<Entry>], found: &mut Vec<u32>) {
    for &m in members {
        if live(slots, m).is_some_and(|e| e.regex.is_match(uri)) {
            found.push(m.slot);
        }
    }
}

/// The entry `member` refers to, unless it has been removed or replaced
/// since.
fn live(slots: &[Option<Entry>], member: Member) -> Option<&Entry> {
    slots
        .get(member.slot as usize)?
        .as_ref()
        .filter(|e| e.generation == member.generation)
}

/// Per-event scratch space, kept to avoid allocating on every event.
/// Marks equal to `epoch` mean "seen during this event".
#[derive(Debug, Default)]
struct Scratch {
    epoch: u32,
    slot_seen: Vec<u32>,
    found: Vec<u32>,
}

/// Which of the two kinds of index a plan belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Literal,
    Scan,
}

impl Plan {
    fn tier(&self) -> Tier {
        match self {
            Self::Literals { .. } => Tier::Literal,
            Self::Scan => Tier::Scan,
        }
    }
}

/// Bookkeeping of one tier (literal or scan) between base rebuilds.
#[derive(Debug, Default)]
struct TierState {
    /// Subscriptions in the base index when it was built.
    base_len: usize,
    /// Inserted since: not in the base index.
    pending: Vec<Member>,
    /// Base members removed or replaced since.
    garbage: usize,
    /// The pending part changed since it was last prepared.
    pending_stale: bool,
}

impl TierState {
    /// Whether the base index should be rebuilt from scratch: when the
    /// pending and removed members outnumber `min + sqrt(base)`.
    fn needs_rebuild(&self, min: usize) -> bool {
        self.pending.len() + self.garbage > min + self.base_len.isqrt()
    }
}

/// Smallest number of changes that triggers a base rebuild (see
/// [`TierState::needs_rebuild`]).
const MIN_PENDING: usize = 16;

/// A set of regex subscriptions, each under a [`SubKey`], that finds the
/// ones matching a URI. See the module documentation for how and at what
/// cost.
#[derive(Debug)]
pub struct Matcher {
    /// Subscriptions at stable slots (so compiled regexes and their caches
    /// are never cloned); `None` marks a free slot.
    slots: Vec<Option<Entry>>,
    /// Free slots, reused first.
    free: Vec<u32>,
    /// Slot of each key.
    by_key: BTreeMap<SubKey, u32>,
    /// Generation of the next insertion.
    next_generation: u64,
    /// Literal tier: base automaton, automaton over pending members.
    literal_base: LiteralIndex,
    literal_delta: LiteralIndex,
    literal_state: TierState,
    /// Scan tier: base `RegexSet`; pending members run one by one.
    scan_base: ScanIndex,
    scan_state: TierState,
    /// See [`MIN_PENDING`] (a field so tests can vary it).
    min_pending: usize,
    /// Size limit for the scan `RegexSet` (a field so tests can force the
    /// one-by-one path).
    scan_set_size_limit: usize,
    scratch: Scratch,
}

impl Default for Matcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Matcher {
    /// An empty matcher.
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_key: BTreeMap::new(),
            next_generation: 0,
            literal_base: LiteralIndex::default(),
            literal_delta: LiteralIndex::default(),
            literal_state: TierState::default(),
            scan_base: ScanIndex::None,
            scan_state: TierState::default(),
            min_pending: MIN_PENDING,
            scan_set_size_limit: SCAN_SET_SIZE_LIMIT,
            scratch: Scratch::default(),
        }
    }

    /// Adds the subscription `key`, or replaces its regex if it exists.
    ///
    /// The index is built from `regex.as_str()`, so the pattern text must
    /// carry every option that changes what it matches (write `(?i)` in the
    /// pattern rather than calling `RegexBuilder::case_insensitive`), as
    /// regexes made by [`compile`] do.
    pub fn insert(&mut self, key: SubKey, regex: impl Into<Pattern>) {
        let regex = regex.into();
        let plan = Plan::of(regex.as_str());
        let tier = plan.tier();
        let generation = self.next_generation;
        self.next_generation += 1;
        let entry = Entry {
            key,
            regex,
            plan,
            generation,
            in_base: false,
        };
        let slot = if let Some(&slot) = self.by_key.get(&key) {
            if let Some(old) = self.slots[slot as usize].replace(entry) {
                self.forget(&old);
            }
            slot
        } else {
            let slot = match self.free.pop() {
                Some(slot) => {
                    self.slots[slot as usize] = Some(entry);
                    slot
                }
                None => {
                    self.slots.push(Some(entry));
                    // More than u32::MAX subscriptions would exhaust memory
                    // long before this saturates.
                    u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
                }
            };
            self.by_key.insert(key, slot);
            slot
        };
        let state = self.state_mut(tier);
        state.pending.push(Member { slot, generation });
        state.pending_stale = true;
    }

    /// Removes the subscription `key`; false if there was none.
    pub fn remove(&mut self, key: SubKey) -> bool {
        let Some(slot) = self.by_key.remove(&key) else {
            return false;
        };
        if let Some(old) = self.slots[slot as usize].take() {
            self.forget(&old);
        }
        self.free.push(slot);
        true
    }

    /// Clears `out`, then pushes the key of every subscription whose regex
    /// matches `uri` (anywhere, as `Regex::is_match`), each once, in
    /// ascending key order.
    pub fn matches(&mut self, uri: &str, out: &mut Vec<SubKey>) {
        out.clear();
        self.refresh();
        self.next_epoch();
        let Self {
            slots,
            literal_base,
            literal_delta,
            scan_base,
            scan_state,
            scratch,
            ..
        } = self;
        literal_base.search(uri, slots, scratch);
        literal_delta.search(uri, slots, scratch);
        scan_base.search(uri, slots, &mut scratch.found);
        search_each(&scan_state.pending, uri, slots, &mut scratch.found);

        let key = |slot: &u32| slots[*slot as usize].as_ref().map_or(0, |e| e.key);
        scratch.found.sort_unstable_by_key(key);
        out.extend(scratch.found.iter().map(key));
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Number of subscriptions without usable prefix literals, whose regex
    /// runs on every URI (`O(len)`; for metrics and tests).
    pub fn unindexed_len(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.plan.is_scan())
            .count()
    }

    fn state_mut(&mut self, tier: Tier) -> &mut TierState {
        match tier {
            Tier::Literal => &mut self.literal_state,
            Tier::Scan => &mut self.scan_state,
        }
    }

    /// Accounts for an entry that was removed or replaced: its index
    /// references are now stale.
    fn forget(&mut self, old: &Entry) {
        let state = self.state_mut(old.plan.tier());
        if old.in_base {
            state.garbage += 1;
        } else {
            state.pending.retain(|m| m.generation != old.generation);
            state.pending_stale = true;
        }
    }

    /// Brings the indexes up to date: rebuilds a tier's base when enough
    /// has changed since it was built, else only its pending part.
    fn refresh(&mut self) {
        if self.literal_state.needs_rebuild(self.min_pending) {
            self.rebuild_base(Tier::Literal);
        } else if self.literal_state.pending_stale {
            let delta = LiteralIndex::build(
                self.literal_state
                    .pending
                    .iter()
                    .filter_map(|&m| live(&self.slots, m).map(|e| (m, &e.plan))),
            );
            self.literal_delta = delta;
            self.literal_state.pending_stale = false;
        }
        if self.scan_state.needs_rebuild(self.min_pending) {
            self.rebuild_base(Tier::Scan);
        }
        self.scan_state.pending_stale = false;
    }

    /// Rebuilds the base index of `tier` over all its live subscriptions
    /// and empties its pending part.
    fn rebuild_base(&mut self, tier: Tier) {
        let mut members = Vec::new();
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            let (Some(entry), Ok(slot)) = (entry, u32::try_from(slot)) else {
                continue;
            };
            if entry.plan.tier() == tier {
                entry.in_base = true;
                members.push(Member {
                    slot,
                    generation: entry.generation,
                });
            }
        }
        let state = self.state_mut(tier);
        *state = TierState {
            base_len: members.len(),
            ..TierState::default()
        };
        match tier {
            Tier::Literal => {
                let slots = &self.slots;
                self.literal_base = LiteralIndex::build(
                    members
                        .iter()
                        .filter_map(|&m| live(slots, m).map(|e| (m, &e.plan))),
                );
                self.literal_delta = LiteralIndex::default();
            }
            Tier::Scan => {
                self.scan_base = ScanIndex::build(members, &self.slots, self.scan_set_size_limit);
            }
        }
    }

    /// Starts a new event: a fresh epoch for the visit marks.
    fn next_epoch(&mut self) {
        let scratch = &mut self.scratch;
        scratch.slot_seen.resize(self.slots.len(), 0);
        if scratch.epoch == u32::MAX {
            scratch.slot_seen.fill(0);
            self.literal_base.reset_marks();
            self.literal_delta.reset_marks();
            scratch.epoch = 0;
        }
        scratch.epoch += 1;
        scratch.found.clear();
    }
}

#[cfg(test)]
mod tests;
