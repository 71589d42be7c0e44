//! The compiled, immutable rule index: built once per snapshot, shared by all requests.
//!
//! Per-request matching does not loop over every pattern. Each rule is indexed under one key
//! that every URL it matches must contain: its literal prefix (the text before the first `<`),
//! in a byte trie walked along the URL, or another of its literal parts, in an Aho-Corasick
//! automaton run over the URL — whichever key fewer rules share, so that rules differing only
//! after a `<...>` group (`http://host:<port>/users/<.*>`, `<https|http>://host/`) are still
//! told apart. A method check filters the candidates, and only those patterns are evaluated.
//! Every candidate is evaluated so that ambiguous rule sets are detected (exactly one rule must
//! match).

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{MatchingStrategy, Rule};
use crate::pattern::Pattern;
use crate::rule_error::RuleError;
use crate::validate::{compile_rule, compile_rule_reusing};

/// An immutable compiled rule set.
#[derive(Debug, Default)]
pub struct RuleSet {
    strategy: MatchingStrategy,
    rules: Vec<Arc<Rule>>,
    compiled: Vec<Compiled>,
    /// The prefix trie while rules are indexed (one node per byte); emptied by `finish`.
    trie: Vec<TrieNode>,
    /// The same trie with chains of rule-less single-child nodes merged into one edge: what
    /// requests walk (a `http://host:port/` prefix is one comparison, not a node per byte).
    radix: Vec<RadixNode>,
    floating: Floating,
}

/// Index of the rules keyed by a literal other than their prefix.
#[derive(Debug, Default)]
struct Floating {
    literals: Vec<String>,
    positions: HashMap<String, usize>,
    literal_rules: Vec<Vec<u32>>,
    automaton: Option<aho_corasick::AhoCorasick>,
    always: Vec<u32>,
}

/// Literals shorter than this do not discriminate enough to index.
const MIN_LITERAL: usize = 3;

/// Former name kept for readers of the design docs.
pub type CompiledRules = RuleSet;

/// Where a rule is indexed.
enum Key {
    /// Under its literal prefix, in the trie.
    Prefix,
    /// Under this literal, in the automaton.
    Literal(String),
    /// Nowhere: evaluated for every request (no literal long enough).
    Always,
}

/// Patterns of an earlier set, by `match.url`, for [`RuleSet::compile_reusing`].
struct Known<'a>(HashMap<&'a str, &'a Pattern>);

impl<'a> Known<'a> {
    fn of(previous: Option<&'a RuleSet>, strategy: MatchingStrategy) -> Self {
        let map = match previous {
            Some(set) if set.strategy == strategy => set
                .rules
                .iter()
                .zip(&set.compiled)
                .map(|(rule, compiled)| (rule.matcher.url.as_str(), &compiled.pattern))
                .collect(),
            _ => HashMap::new(),
        };
        Self(map)
    }

    fn get(&self, rule: &Rule) -> Option<&'a Pattern> {
        self.0.get(rule.matcher.url.as_str()).copied()
    }
}

#[derive(Debug)]
struct Compiled {
    pattern: Pattern,
    methods: Vec<String>,
}

#[derive(Debug, Default)]
struct TrieNode {
    children: Vec<(u8, u32)>,
    rules: Vec<u32>,
}

#[derive(Debug, Default)]
struct RadixNode {
    /// The bytes on the edge from the parent (empty for the root).
    label: Box<[u8]>,
    /// Children by the first byte of their label.
    children: Vec<(u8, u32)>,
    rules: Vec<u32>,
}

/// Merges every chain of nodes without rules and with one child into its parent's edge. A node
/// with rules, or where prefixes branch, stays a node: a walk along a URL visits exactly the
/// nodes with rules that the byte trie's walk visits.
fn compress(trie: &[TrieNode]) -> Vec<RadixNode> {
    let Some(root) = trie.first() else {
        return Vec::new();
    };
    let mut radix = vec![RadixNode {
        rules: root.rules.clone(),
        ..RadixNode::default()
    }];
    let mut pending = vec![(0usize, 0usize)];
    while let Some((from, into)) = pending.pop() {
        for &(byte, child) in &trie[from].children {
            let mut label = vec![byte];
            let mut node = child as usize;
            while trie[node].rules.is_empty() && trie[node].children.len() == 1 {
                let (next_byte, next) = trie[node].children[0];
                label.push(next_byte);
                node = next as usize;
            }
            let index = radix.len();
            radix.push(RadixNode {
                label: label.into_boxed_slice(),
                children: Vec::new(),
                rules: trie[node].rules.clone(),
            });
            radix[into].children.push((byte, index as u32));
            pending.push((node, index));
        }
    }
    radix
}

/// The one rule that matched, with its capture groups.
#[derive(Clone, Debug)]
pub struct Match {
    /// The rule.
    pub rule: Arc<Rule>,
    /// `MatchContext.RegexpCaptureGroups` (empty for globs).
    pub capture_groups: Vec<String>,
    /// Position of the rule in [`RuleSet::rules`] (for per-rule data kept beside the set).
    pub index: usize,
}

/// The one rule that matched, before its capture groups are extracted.
#[derive(Clone, Debug)]
pub struct Found {
    /// The rule.
    pub rule: Arc<Rule>,
    /// Position of the rule in [`RuleSet::rules`].
    pub index: usize,
}

/// Why a request has no rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// No rule matches: 404.
    #[error("Requested url does not match any rules")]
    NotFound,
    /// Several rules match: 500 (the ids are for logs).
    #[error("Expected exactly one rule but found multiple rules")]
    Multiple(Vec<String>),
    /// A pattern could not be evaluated (backtracking limit): 500.
    #[error("rule {rule_id:?}: {message}")]
    Eval {
        /// The rule whose pattern failed.
        rule_id: String,
        /// The engine's explanation.
        message: String,
    },
}

impl MatchError {
    /// The HTTP status Oathkeeper answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::Multiple(_) | Self::Eval { .. } => 500,
        }
    }
}

impl RuleSet {
    /// Compiles all rules; the first invalid rule fails the whole set.
    pub fn compile(rules: Vec<Rule>, strategy: MatchingStrategy) -> Result<Self, RuleError> {
        Self::compile_reusing(rules, strategy, None)
    }

    /// [`RuleSet::compile`], reusing the compiled patterns of `previous` for every `match.url`
    /// it already holds, so that a new snapshot differing in a few rules compiles only those
    /// (the operator stream sends full snapshots on every change).
    pub fn compile_reusing(
        rules: Vec<Rule>,
        strategy: MatchingStrategy,
        previous: Option<&RuleSet>,
    ) -> Result<Self, RuleError> {
        let known = Known::of(previous, strategy);
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            let pattern = compile_rule_reusing(&rule, strategy, known.get(&rule))?;
            compiled.push((rule, pattern));
        }
        Ok(Self::build(compiled, strategy))
    }

    /// Compiles the valid rules and returns the errors of the others (which are left out).
    pub fn compile_lenient(rules: Vec<Rule>, strategy: MatchingStrategy) -> (Self, Vec<RuleError>) {
        let mut compiled = Vec::with_capacity(rules.len());
        let mut errors = Vec::new();
        for rule in rules {
            match compile_rule(&rule, strategy) {
                Ok(pattern) => compiled.push((rule, pattern)),
                Err(e) => errors.push(e),
            }
        }
        (Self::build(compiled, strategy), errors)
    }

    /// Indexes each rule under its most selective key: its literal prefix (the trie) or one of
    /// its literals (the automaton), whichever fewer rules share. Every literal of a pattern
    /// occurs in every URL it matches, so a rule is a candidate only when its key was found;
    /// choosing the rarest key keeps the candidate lists short even when all rules share a
    /// prefix such as `http://127.0.0.1:` before a `<port>` group.
    fn build(compiled: Vec<(Rule, Pattern)>, strategy: MatchingStrategy) -> Self {
        let mut set = Self {
            strategy,
            trie: vec![TrieNode::default()],
            ..Self::default()
        };
        // In how many rules each literal occurs (each rule counted once).
        let mut shared: HashMap<String, usize> = HashMap::new();
        for (_, pattern) in &compiled {
            let mut own: Vec<&String> = pattern.literals().iter().collect();
            own.sort_unstable();
            own.dedup();
            for literal in own {
                *shared.entry(literal.clone()).or_default() += 1;
            }
        }
        let rarity = |literal: &str| shared.get(literal).copied().unwrap_or(usize::MAX);
        for (rule, pattern) in compiled {
            let index = set.rules.len() as u32;
            let prefix = pattern.literal_prefix();
            let rarest = pattern
                .literals()
                .iter()
                .filter(|l| l.len() >= MIN_LITERAL)
                .min_by_key(|l| (rarity(l), std::cmp::Reverse(l.len())));
            let key = match rarest {
                Some(literal) if prefix.is_empty() || rarity(literal) < rarity(prefix) => {
                    Key::Literal(literal.clone())
                }
                _ if !prefix.is_empty() => Key::Prefix,
                _ => Key::Always,
            };
            match key {
                Key::Prefix => set.index_prefix(index, prefix),
                Key::Literal(literal) => set.index_literal(index, literal),
                Key::Always => set.floating.always.push(index),
            }
            set.push_compiled(rule, pattern);
        }
        set.finish();
        set
    }

    fn finish(&mut self) {
        self.radix = compress(&self.trie);
        self.trie = Vec::new();
        if self.floating.literals.is_empty() {
            return;
        }
        match aho_corasick::AhoCorasick::new(&self.floating.literals) {
            Ok(automaton) => self.floating.automaton = Some(automaton),
            Err(_) => {
                // Cannot happen for non-empty literal lists; stay correct by checking them all.
                let all: Vec<u32> = self.floating.literal_rules.drain(..).flatten().collect();
                self.floating.always.extend(all);
                self.floating.literals.clear();
            }
        }
    }

    fn index_literal(&mut self, index: u32, literal: String) {
        match self.floating.positions.get(&literal) {
            Some(&i) => self.floating.literal_rules[i].push(index),
            None => {
                self.floating
                    .positions
                    .insert(literal.clone(), self.floating.literals.len());
                self.floating.literals.push(literal);
                self.floating.literal_rules.push(vec![index]);
            }
        }
    }

    fn index_prefix(&mut self, index: u32, prefix: &str) {
        let mut node = 0usize;
        for byte in prefix.bytes() {
            let existing = self.trie[node]
                .children
                .iter()
                .find(|(b, _)| *b == byte)
                .map(|(_, child)| *child as usize);
            node = match existing {
                Some(child) => child,
                None => {
                    let child = self.trie.len();
                    self.trie.push(TrieNode::default());
                    self.trie[node].children.push((byte, child as u32));
                    child
                }
            };
        }
        self.trie[node].rules.push(index);
    }

    fn push_compiled(&mut self, rule: Rule, pattern: Pattern) {
        let methods = rule
            .matcher
            .methods
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        self.compiled.push(Compiled { pattern, methods });
        self.rules.push(Arc::new(rule));
    }

    /// Finds the one rule for `method` and `url` (`scheme://host[:port]/cleaned-path`).
    pub fn find(&self, method: &str, url: &str) -> Result<Match, MatchError> {
        let found = self.find_rule(method, url)?;
        let capture_groups = self.capture_groups(found.index, url)?;
        Ok(Match {
            rule: found.rule,
            capture_groups,
            index: found.index,
        })
    }

    /// The capture groups of rule `index` (as returned by [`RuleSet::find_rule`]) for `url`:
    /// `MatchContext.RegexpCaptureGroups`, empty for globs or if the rule does not match.
    pub fn capture_groups(&self, index: usize, url: &str) -> Result<Vec<String>, MatchError> {
        let Some(compiled) = self.compiled.get(index) else {
            return Ok(Vec::new());
        };
        compiled
            .pattern
            .captures(url)
            .map(Option::unwrap_or_default)
            .map_err(|e| MatchError::Eval {
                rule_id: self.rules[index].id.clone(),
                message: e.to_string(),
            })
    }

    /// Like [`RuleSet::find`] without extracting capture groups (the cheaper path for rules
    /// whose handlers do not read them; see [`RuleSet::capture_groups`]).
    pub fn find_rule(&self, method: &str, url: &str) -> Result<Found, MatchError> {
        let mut found: Option<Found> = None;
        let mut extra: Vec<String> = Vec::new();
        // `after_prefix`: the URL is known to start with the rule's literal prefix (found in the
        // prefix tree), so only the rest is checked.
        let mut check = |index: u32, after_prefix: bool| -> Result<(), MatchError> {
            let index = index as usize;
            let compiled = &self.compiled[index];
            if !compiled
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
            {
                return Ok(());
            }
            let matched = if after_prefix {
                compiled.pattern.is_match_after_prefix(url)
            } else {
                compiled.pattern.is_match(url)
            };
            let matched = matched.map_err(|e| MatchError::Eval {
                rule_id: self.rules[index].id.clone(),
                message: e.to_string(),
            })?;
            if matched {
                if found.is_some() {
                    extra.push(self.rules[index].id.clone());
                } else {
                    found = Some(Found {
                        rule: Arc::clone(&self.rules[index]),
                        index,
                    });
                }
            }
            Ok(())
        };
        let mut node = 0usize;
        let bytes = url.as_bytes();
        let mut depth = 0usize;
        while let Some(current) = self.radix.get(node) {
            for &index in &current.rules {
                check(index, true)?;
            }
            let Some(&byte) = bytes.get(depth) else { break };
            let Some(&(_, child)) = current.children.iter().find(|(b, _)| *b == byte) else {
                break;
            };
            let Some(next) = self.radix.get(child as usize) else {
                break;
            };
            if !bytes[depth..].starts_with(&next.label) {
                break;
            }
            depth += next.label.len();
            node = child as usize;
        }
        if let Some(automaton) = &self.floating.automaton {
            let mut literals: Vec<usize> = automaton
                .find_overlapping_iter(url)
                .map(|m| m.pattern().as_usize())
                .collect();
            literals.sort_unstable();
            literals.dedup();
            for literal in literals {
                for &index in &self.floating.literal_rules[literal] {
                    check(index, false)?;
                }
            }
        }
        for &index in &self.floating.always {
            check(index, false)?;
        }
        match (found, extra.is_empty()) {
            (None, _) => Err(MatchError::NotFound),
            (Some(m), true) => Ok(m),
            (Some(m), false) => {
                extra.insert(0, m.rule.id.clone());
                Err(MatchError::Multiple(extra))
            }
        }
    }

    /// All rules, in load order.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// The first rule with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Rule>> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The strategy the patterns were compiled with.
    pub fn strategy(&self) -> MatchingStrategy {
        self.strategy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Handler, RuleMatch, Upstream};

    fn rule(id: &str, url: &str, methods: &[&str]) -> Rule {
        Rule {
            id: id.to_owned(),
            version: None,
            description: None,
            matcher: RuleMatch {
                url: url.to_owned(),
                methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            },
            upstream: Upstream::default(),
            authenticators: vec![Handler::named("noop")],
            authorizer: Handler::named("allow"),
            mutators: vec![Handler::named("noop")],
            errors: vec![],
        }
    }

    fn set(rules: Vec<Rule>, strategy: MatchingStrategy) -> RuleSet {
        RuleSet::compile(rules, strategy).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn exactly_one_rule_must_match() {
        let rules = set(
            vec![
                rule("public", "http://a/public/<.*>", &["GET", "post"]),
                rule("admin", "http://a/<(?!public).*>", &["GET"]),
                rule("any", "<.*>/dup", &["PUT"]),
                rule("dup", "http://a/dup", &["PUT"]),
            ],
            MatchingStrategy::Regexp,
        );
        let cases: &[(&str, &str, Result<&str, u16>)] = &[
            ("GET", "http://a/public/x", Ok("public")),
            ("POST", "http://a/public/x", Ok("public")),
            ("get", "http://a/public/x", Ok("public")),
            ("DELETE", "http://a/public/x", Err(404)),
            ("GET", "http://a/admin", Ok("admin")),
            ("GET", "http://b/admin", Err(404)),
            ("PUT", "http://a/dup", Err(500)),
            ("PUT", "http://z/dup", Ok("any")),
            ("GET", "", Err(404)),
        ];
        for (method, url, expected) in cases {
            let got = rules
                .find(method, url)
                .map(|m| m.rule.id.clone())
                .map_err(|e| e.status());
            assert_eq!(got.as_deref().map_err(|s| *s), *expected, "{method} {url}");
        }
    }

    #[test]
    fn capture_groups_come_with_the_match() -> Result<(), MatchError> {
        let rules = set(
            vec![rule("r", "http://a/<[a-z]+>/<\\d+>", &["GET"])],
            MatchingStrategy::Regexp,
        );
        let m = rules.find("GET", "http://a/users/7")?;
        assert_eq!(m.capture_groups, vec!["users", "7"]);
        Ok(())
    }

    #[test]
    fn glob_rule_sets_match_too() {
        let rules = set(
            vec![
                rule("one", "http://a/<*>", &["GET"]),
                rule("deep", "http://a/static/<**>", &["GET"]),
            ],
            MatchingStrategy::Glob,
        );
        assert_eq!(
            rules.find("GET", "http://a/x").map(|m| m.rule.id.clone()),
            Ok("one".to_owned())
        );
        assert_eq!(
            rules
                .find("GET", "http://a/static/js/app.js")
                .map(|m| m.rule.id.clone()),
            Ok("deep".to_owned())
        );
        assert_eq!(
            rules.find("GET", "http://a/x.y").map(|_| ()),
            Err(MatchError::NotFound)
        );
    }

    #[test]
    fn many_rules_only_evaluate_candidates() -> Result<(), MatchError> {
        let rules: Vec<Rule> = (0..2_000)
            .map(|i| rule(&format!("r{i}"), &format!("http://a/svc{i}/<.*>"), &["GET"]))
            .collect();
        let rules = set(rules, MatchingStrategy::Regexp);
        assert_eq!(rules.find("GET", "http://a/svc1999/x")?.rule.id, "r1999");
        assert_eq!(rules.find("GET", "http://a/svc1/x")?.rule.id, "r1");
        Ok(())
    }

    #[test]
    fn patterns_starting_with_a_group_are_indexed_by_their_literal() -> Result<(), MatchError> {
        let rules = set(
            vec![
                rule("a", "<https|http>://a.example/<.*>", &["GET"]),
                rule("b", "<https|http>://b.example/<.*>", &["GET"]),
                rule("any", "<.*>", &["POST"]),
                rule("short", "<.*>/x<.*>", &["PUT"]),
                rule("twice", "<.*>/dup/<.*>", &["DELETE"]),
            ],
            MatchingStrategy::Regexp,
        );
        assert_eq!(rules.find("GET", "https://b.example/p")?.rule.id, "b");
        assert_eq!(rules.find("GET", "http://a.example/")?.rule.id, "a");
        assert_eq!(rules.find("POST", "anything")?.rule.id, "any");
        assert_eq!(rules.find("PUT", "http://h/xyz")?.rule.id, "short");
        assert_eq!(rules.find("DELETE", "http://h/dup/dup/x")?.rule.id, "twice");
        assert_eq!(
            rules.find("GET", "http://c.example/").map(|_| ()),
            Err(MatchError::NotFound)
        );
        Ok(())
    }

    #[test]
    fn nested_and_branching_prefixes_are_walked_like_the_byte_trie() -> Result<(), MatchError> {
        // Prefixes nest (`/a` inside `/api`), branch mid-edge (`/api/v1` vs `/api/v2`) and
        // end where another continues: the merged edges must find every rule whose prefix the
        // URL starts with, and no other.
        let rules = set(
            vec![
                rule("api-v1", "http://h/api/v1/<.*>", &["GET"]),
                rule("api-v2", "http://h/api/v2/<.*>", &["GET"]),
                rule("apix", "http://h/apix<.*>", &["GET"]),
                rule("a-exact", "http://h/a", &["GET"]),
                rule("other-host", "http://other/<.*>", &["GET"]),
            ],
            MatchingStrategy::Regexp,
        );
        for (url, expected) in [
            ("http://h/api/v1/users", Some("api-v1")),
            ("http://h/api/v2/", Some("api-v2")),
            ("http://h/apixyz", Some("apix")),
            ("http://h/a", Some("a-exact")),
            ("http://other/x", Some("other-host")),
            ("http://h/api/v3/x", None),
            ("http://h/api/v", None),
            ("http://h/ap", None),
            ("http://h", None),
            ("http://othe", None),
            ("", None),
        ] {
            match rules.find("GET", url) {
                Ok(found) => assert_eq!(Some(found.rule.id.as_str()), expected, "{url}"),
                Err(MatchError::NotFound) => assert_eq!(None, expected, "{url}"),
                Err(e) => return Err(e),
            }
        }
        // A URL that is a prefix of a longer edge stops inside it without reading past the end.
        assert_eq!(
            rules.find("GET", "http://h/api/v1").map(|_| ()),
            Err(MatchError::NotFound)
        );
        Ok(())
    }

    #[test]
    fn rules_sharing_a_prefix_before_a_group_are_told_apart() -> Result<(), MatchError> {
        // Every pattern starts with the same literal before a `<port>` group: the index keys
        // them by their rarer literal (`/r0042/`), and matching stays exact.
        let mut rules: Vec<Rule> = (0..1_000)
            .map(|i| {
                let url = format!("http://127.0.0.1:<[0-9]+>/r{i:04}/<.*>");
                rule(&format!("r{i:04}"), &url, &["GET"])
            })
            .collect();
        rules.push(rule("whole-host", "http://127.0.0.1:4455/<.*>", &["POST"]));
        let rules = set(rules, MatchingStrategy::Regexp);
        assert_eq!(
            rules.find("GET", "http://127.0.0.1:4455/r0042/x")?.rule.id,
            "r0042"
        );
        assert_eq!(
            rules.find("GET", "http://127.0.0.1:1/r0999/")?.rule.id,
            "r0999"
        );
        assert_eq!(
            rules
                .find("GET", "http://127.0.0.1:4455/r1000/x")
                .map(|_| ()),
            Err(MatchError::NotFound)
        );
        assert_eq!(
            rules.find("POST", "http://127.0.0.1:4455/r0042/x")?.rule.id,
            "whole-host"
        );
        Ok(())
    }

    #[test]
    fn ambiguity_is_found_across_index_keys() {
        // One rule keyed by its prefix, the other by a literal after a group: both match.
        let rules = set(
            vec![
                rule("by-prefix", "http://127.0.0.1:4455/<.*>", &["GET"]),
                rule(
                    "by-literal",
                    "http://127.0.0.1:<[0-9]+>/shop/<.*>",
                    &["GET"],
                ),
            ],
            MatchingStrategy::Regexp,
        );
        match rules.find("GET", "http://127.0.0.1:4455/shop/x") {
            Err(MatchError::Multiple(mut ids)) => {
                ids.sort();
                assert_eq!(ids, ["by-literal", "by-prefix"]);
            }
            other => panic!("expected both rules, got {other:?}"),
        }
    }

    #[test]
    fn compile_reusing_reuses_known_patterns_and_checks_new_ones() -> Result<(), MatchError> {
        let first = set(
            vec![
                rule("a", "http://a/<.*>", &["GET"]),
                rule("b", "http://b/<[0-9]+>", &["GET"]),
            ],
            MatchingStrategy::Regexp,
        );
        let next = RuleSet::compile_reusing(
            vec![
                rule("a", "http://a/<.*>", &["GET", "POST"]),
                rule("c", "http://c/<[a-z]+>", &["GET"]),
            ],
            MatchingStrategy::Regexp,
            Some(&first),
        )
        .expect("valid set");
        assert_eq!(next.find("POST", "http://a/x")?.rule.id, "a");
        assert_eq!(next.find("GET", "http://c/abc")?.rule.id, "c");
        assert_eq!(
            next.find("GET", "http://b/1").map(|_| ()),
            Err(MatchError::NotFound)
        );
        // A broken new pattern is still refused, whatever the previous set held.
        let broken = RuleSet::compile_reusing(
            vec![rule("d", "http://d/<[unclosed>", &["GET"])],
            MatchingStrategy::Regexp,
            Some(&first),
        );
        assert!(broken.is_err());
        // Patterns compiled under another strategy are never reused.
        let glob = RuleSet::compile_reusing(
            vec![rule("a", "http://a/<.*>", &["GET"])],
            MatchingStrategy::Glob,
            Some(&first),
        )
        .expect("valid glob");
        assert_eq!(glob.find("GET", "http://a/.x")?.rule.id, "a");
        assert_eq!(
            glob.find("GET", "http://a/x/y").map(|_| ()),
            Err(MatchError::NotFound),
            "glob semantics, not the regexp compiled for the same url"
        );
        Ok(())
    }

    #[test]
    fn lenient_compile_drops_only_the_broken_rule() {
        let (rules, errors) = RuleSet::compile_lenient(
            vec![
                rule("ok", "http://a/<.*>", &["GET"]),
                rule("bad", "http://a/<.*", &["GET"]),
            ],
            MatchingStrategy::Regexp,
        );
        assert_eq!(rules.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].rule_id, "bad");
        assert_eq!(errors[0].field, "match.url");
    }
}
