//! Compiles `match.url` patterns with Oathkeeper's `<...>` delimiters.
//!
//! Text outside the delimiters is literal; text inside is a regular expression (`regexp`
//! strategy, each part a capture group, the whole anchored, look-around supported) or a glob
//! (`glob` strategy, `.` and `/` as separators). Delimiters nest by depth; only top-level pairs
//! delimit. Patterns are compiled once when a rule set is built, never per request.

use crate::model::MatchingStrategy;

/// Why a pattern does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// `<` and `>` do not pair up.
    #[error("unbalanced pattern: `<` and `>` do not pair up")]
    Unbalanced,
    /// The expression inside the delimiters is invalid.
    #[error("invalid {strategy} expression {part:?}: {reason}")]
    Invalid {
        /// `regexp` or `glob`.
        strategy: &'static str,
        /// The offending part.
        part: String,
        /// The engine's explanation.
        reason: String,
    },
}

/// Why matching a compiled pattern failed at request time (backtracking limit).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pattern evaluation failed: {0}")]
pub struct EvalError(pub String);

/// A compiled `match.url` pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    /// `None` when the pattern is a literal followed by `<.*>` (regexp) or `<**>` (glob), the
    /// most common shape (`https://host/api/<.*>`): a URL matches when it starts with the
    /// literal and has no newline after it (`.` does not match `\n`), and the one group is the
    /// rest. Decided without a regex, and without holding one: a compiled `^literal(.*)$` takes
    /// tens of KiB per rule (Unicode `.`).
    regex: Option<std::sync::Arc<fancy_regex::Regex>>,
    literal_prefix: String,
    longest_literal: String,
    literals: Vec<String>,
    captures: bool,
    /// The regex matches what follows `literal_prefix`, which is checked apart.
    strip_prefix: bool,
}

impl Pattern {
    /// Compiles `source` with the given strategy.
    pub fn compile(source: &str, strategy: MatchingStrategy) -> Result<Self, PatternError> {
        let parts = split(source)?;
        let literal_prefix = match parts.first() {
            Some(Part::Literal(text)) => text.to_string(),
            _ => String::new(),
        };
        let literals: Vec<String> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Literal(text) => Some((*text).to_owned()),
                Part::Inner(_) => None,
            })
            .collect();
        let longest_literal = literals
            .iter()
            .max_by_key(|text| text.len())
            .cloned()
            .unwrap_or_default();
        let mut regex = String::from("^");
        let mut inner_regexes = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            match (part, strategy) {
                // The literal prefix goes into the regex only when it cannot be checked apart
                // (decided below, once every part is known).
                (Part::Literal(_), _) if i == 0 => {}
                (Part::Literal(text), _) => regex.push_str(&regex::escape(text)),
                (Part::Inner(inner), MatchingStrategy::Regexp) => {
                    // Each part must also compile on its own, as Oathkeeper requires.
                    compile_regex(&format!("^{inner}$"), inner)?;
                    regex.push('(');
                    regex.push_str(inner);
                    regex.push(')');
                    inner_regexes.push((*inner).to_owned());
                }
                (Part::Inner(inner), MatchingStrategy::Glob) => {
                    let translated = glob_to_regex(inner)?;
                    regex.push_str(&translated);
                    inner_regexes.push(translated);
                }
            }
        }
        let prefix_then_anything = match parts.as_slice() {
            [Part::Inner(_)] | [Part::Literal(_), Part::Inner(_)] => {
                inner_regexes.first().is_some_and(|r| r == ".*")
            }
            _ => false,
        };
        regex.push('$');
        // Matching `^prefix(inner)$` is `starts_with(prefix)` and `^(inner)$` on what follows,
        // unless the part looks behind where it starts: then the prefix stays in the regex.
        // Without it the compiled regex is much smaller (each literal byte is a state). Only for
        // one part after the prefix: with a literal after a part, a regex without a literal
        // prefix compiles to the engine's reverse-inner strategy, which costs more (compiling
        // 1 000 such rules took 231 ms instead of 125, and matching got slower).
        let strip_prefix = matches!(parts.as_slice(), [Part::Literal(_), Part::Inner(_)])
            && inner_regexes.iter().all(|r| reads_only_forward(r));
        if !strip_prefix && !literal_prefix.is_empty() {
            regex.insert_str(1, &regex::escape(&literal_prefix));
        }
        let regex = if prefix_then_anything {
            None
        } else {
            Some(shared_regex(&regex, source)?)
        };
        Ok(Self {
            regex,
            strip_prefix,
            literal_prefix,
            longest_literal,
            literals,
            captures: strategy == MatchingStrategy::Regexp,
        })
    }

    /// The literal text every matching URL starts with (used by the prefilter).
    pub fn literal_prefix(&self) -> &str {
        &self.literal_prefix
    }

    /// The longest literal text every matching URL contains (used by the prefilter for
    /// patterns that start with a `<...>` part).
    pub fn longest_literal(&self) -> &str {
        &self.longest_literal
    }

    /// Whether `url` matches, without extracting capture groups.
    pub fn is_match(&self, url: &str) -> Result<bool, EvalError> {
        match (&self.regex, self.regex_input(url)) {
            (None, _) => Ok(self.rest_after_prefix(url).is_some()),
            (Some(_), None) => Ok(false),
            (Some(regex), Some(input)) => {
                regex.is_match(input).map_err(|e| EvalError(e.to_string()))
            }
        }
    }

    /// [`Pattern::is_match`] for a URL already known to start with the literal prefix (the rule
    /// index found the rule by it), without comparing the prefix again.
    pub fn is_match_after_prefix(&self, url: &str) -> Result<bool, EvalError> {
        debug_assert!(url.starts_with(self.literal_prefix.as_str()));
        let Some(rest) = url.get(self.literal_prefix.len()..) else {
            return self.is_match(url);
        };
        match &self.regex {
            None => Ok(!rest.contains('\n')),
            Some(regex) => regex
                .is_match(if self.strip_prefix { rest } else { url })
                .map_err(|e| EvalError(e.to_string())),
        }
    }

    /// What the regex runs on: the URL after the literal prefix (`None` when it does not start
    /// with it), or the whole URL when the prefix is part of the regex.
    fn regex_input<'u>(&self, url: &'u str) -> Option<&'u str> {
        if self.strip_prefix {
            url.strip_prefix(self.literal_prefix.as_str())
        } else {
            Some(url)
        }
    }

    /// For a pattern without a regex: what `.*` matches when `url` matches
    /// (`.` does not match `\n`).
    fn rest_after_prefix<'u>(&self, url: &'u str) -> Option<&'u str> {
        url.strip_prefix(self.literal_prefix.as_str())
            .filter(|rest| !rest.contains('\n'))
    }

    /// Every literal part, in order: each one occurs in every matching URL.
    pub fn literals(&self) -> &[String] {
        &self.literals
    }

    /// Whether `url` matches; on a match, the capture groups (empty for globs).
    pub fn captures(&self, url: &str) -> Result<Option<Vec<String>>, EvalError> {
        let Some(regex) = &self.regex else {
            // `^literal(.*)$`: the one group is the rest of the URL.
            return Ok(self.rest_after_prefix(url).map(|rest| {
                if self.captures {
                    vec![rest.to_owned()]
                } else {
                    Vec::new()
                }
            }));
        };
        let Some(url) = self.regex_input(url) else {
            return Ok(None);
        };
        if !self.captures {
            return match regex.is_match(url) {
                Ok(true) => Ok(Some(Vec::new())),
                Ok(false) => Ok(None),
                Err(e) => Err(EvalError(e.to_string())),
            };
        }
        match regex.captures(url) {
            Ok(Some(caps)) => Ok(Some(
                caps.iter()
                    .skip(1)
                    .map(|group| group.map(|m| m.as_str().to_owned()).unwrap_or_default())
                    .collect(),
            )),
            Ok(None) => Ok(None),
            Err(e) => Err(EvalError(e.to_string())),
        }
    }
}

/// Whether a part's regex reads nothing before where it starts matching, so that running the
/// pattern without its literal prefix means the same: no look-behind, no word boundary, no
/// start anchor (a `^` only as a class negation). Conservative: a `\\b` or `(?<name>` also
/// counts as looking behind.
fn reads_only_forward(regex: &str) -> bool {
    let bytes = regex.as_bytes();
    ["(?<", "\\b", "\\B", "\\A", "\\<", "\\>"]
        .iter()
        .all(|s| !regex.contains(s))
        && bytes
            .iter()
            .enumerate()
            .all(|(i, &c)| c != b'^' || (i > 0 && bytes[i - 1] == b'['))
}

/// One compiled regex per distinct source, shared by every pattern that needs it: one-part
/// patterns without their prefix repeat a lot (`<[0-9]+>`, `<[^/]+>`, `<(?!admin).*>`), and a
/// compiled regex takes tens of KiB. Entries are weak: a regex is freed with the last rule
/// holding it.
fn shared_regex(
    regex: &str,
    part: &str,
) -> Result<std::sync::Arc<fancy_regex::Regex>, PatternError> {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex, Weak};
    static SHARED: LazyLock<Mutex<HashMap<String, Weak<fancy_regex::Regex>>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    if let Some(found) = SHARED
        .lock()
        .ok()
        .and_then(|shared| shared.get(regex).and_then(Weak::upgrade))
    {
        return Ok(found);
    }
    let compiled = Arc::new(compile_regex(regex, part)?);
    if let Ok(mut shared) = SHARED.lock() {
        // Forget the regexes no rule holds any more, now and then.
        if shared.len() >= 1024 && shared.len().is_power_of_two() {
            shared.retain(|_, weak| weak.strong_count() > 0);
        }
        shared.insert(regex.to_owned(), Arc::downgrade(&compiled));
    }
    Ok(compiled)
}

fn compile_regex(regex: &str, part: &str) -> Result<fancy_regex::Regex, PatternError> {
    fancy_regex::Regex::new(regex).map_err(|e| PatternError::Invalid {
        strategy: "regexp",
        part: part.to_owned(),
        reason: e.to_string(),
    })
}

#[derive(Debug, PartialEq)]
enum Part<'a> {
    Literal(&'a str),
    Inner(&'a str),
}

/// Splits at top-level `<...>` pairs, tracking nesting depth like Oathkeeper.
fn split(source: &str) -> Result<Vec<Part<'_>>, PatternError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut literal_start = 0;
    let mut inner_start = 0;
    for (i, byte) in source.bytes().enumerate() {
        match byte {
            b'<' => {
                if depth == 0 {
                    if i > literal_start {
                        parts.push(Part::Literal(&source[literal_start..i]));
                    }
                    inner_start = i + 1;
                }
                depth += 1;
            }
            b'>' => {
                depth = depth.checked_sub(1).ok_or(PatternError::Unbalanced)?;
                if depth == 0 {
                    parts.push(Part::Inner(&source[inner_start..i]));
                    literal_start = i + 1;
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(PatternError::Unbalanced);
    }
    if literal_start < source.len() {
        parts.push(Part::Literal(&source[literal_start..]));
    }
    Ok(parts)
}

/// Translates a glob (gobwas/glob syntax, separators `.` and `/`) into regex syntax.
fn glob_to_regex(glob: &str) -> Result<String, PatternError> {
    let invalid = |reason: &str| PatternError::Invalid {
        strategy: "glob",
        part: glob.to_owned(),
        reason: reason.to_owned(),
    };
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::new();
    let mut alternation_depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                out.push_str(".*");
                i += 1;
            }
            '*' => out.push_str("[^./]*"),
            '?' => out.push_str("[^./]"),
            '\\' => {
                let next = chars.get(i + 1).ok_or_else(|| invalid("dangling escape"))?;
                out.push_str(&regex::escape(&next.to_string()));
                i += 1;
            }
            '[' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|&ch| ch == ']')
                    .ok_or_else(|| invalid("unclosed `[`"))?
                    + i
                    + 1;
                let body: String = chars[i + 1..close].iter().collect();
                let (negated, body) = match body.strip_prefix('!') {
                    Some(rest) => (true, rest.to_owned()),
                    None => (false, body),
                };
                if body.is_empty() {
                    return Err(invalid("empty character class"));
                }
                out.push('[');
                if negated {
                    out.push('^');
                }
                for ch in body.chars() {
                    match ch {
                        '-' => out.push('-'),
                        '\\' | '[' | ']' | '^' | '&' | '~' => {
                            out.push('\\');
                            out.push(ch);
                        }
                        _ => out.push(ch),
                    }
                }
                out.push(']');
                i = close;
            }
            '{' => {
                alternation_depth += 1;
                out.push_str("(?:");
            }
            ',' if alternation_depth > 0 => out.push('|'),
            '}' if alternation_depth > 0 => {
                alternation_depth -= 1;
                out.push(')');
            }
            _ => out.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    if alternation_depth != 0 {
        return Err(invalid("unclosed `{`"));
    }
    // Validate the class syntax early so that errors name the glob.
    regex::Regex::new(&out).map_err(|e| invalid(&e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `pattern` matches `url`, checking that `captures`, `is_match` and (for a URL with
    /// the literal prefix) `is_match_after_prefix` agree.
    fn matches(pattern: &str, strategy: MatchingStrategy, url: &str) -> bool {
        let Ok(p) = Pattern::compile(pattern, strategy) else {
            return false;
        };
        let captured = p.captures(url).ok().flatten().is_some();
        assert_eq!(p.is_match(url).ok(), Some(captured), "{pattern} vs {url}");
        if url.starts_with(p.literal_prefix()) {
            assert_eq!(
                p.is_match_after_prefix(url).ok(),
                Some(captured),
                "{pattern} vs {url} after the prefix"
            );
        }
        captured
    }

    /// The regex a pattern stands for, prefix included, as Oathkeeper builds it.
    fn whole_regex(source: &str, strategy: MatchingStrategy) -> fancy_regex::Regex {
        let mut regex = String::from("^");
        for part in split(source).unwrap() {
            match (part, strategy) {
                (Part::Literal(text), _) => regex.push_str(&regex::escape(text)),
                (Part::Inner(inner), MatchingStrategy::Regexp) => {
                    regex.push('(');
                    regex.push_str(inner);
                    regex.push(')');
                }
                (Part::Inner(inner), MatchingStrategy::Glob) => {
                    regex.push_str(&glob_to_regex(inner).unwrap());
                }
            }
        }
        regex.push('$');
        fancy_regex::Regex::new(&regex).unwrap()
    }

    #[test]
    fn patterns_with_the_same_regex_share_it() {
        let a = Pattern::compile("http://a/x/<[0-9]+>", MatchingStrategy::Regexp).unwrap();
        let b = Pattern::compile("http://b/y/<[0-9]+>", MatchingStrategy::Regexp).unwrap();
        let c = Pattern::compile("http://b/y/<[a-z]+>", MatchingStrategy::Regexp).unwrap();
        let (a, b, c) = (a.regex.unwrap(), b.regex.unwrap(), c.regex.unwrap());
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert!(!std::sync::Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn matching_after_the_prefix_agrees_with_the_whole_regex() {
        let urls = [
            "http://a/b/12",
            "http://a/b/12/x",
            "http://a/b/",
            "http://a/b/admin",
            "http://a/b/adminx",
            "http://a/b/user",
            "http://a/b/x/y",
            "http://a/bx/y",
            "http://a/b/b",
            "http://a/b/\nq",
            "http://x/b/12",
            "",
        ];
        let cases = [
            ("http://a/b/<[0-9]+>", MatchingStrategy::Regexp, true),
            ("http://a/b/<(?!admin).*>", MatchingStrategy::Regexp, true),
            ("http://a/b/<[^/]+>", MatchingStrategy::Regexp, true),
            ("http://a/b/<[a-z]+>/<.*>", MatchingStrategy::Regexp, false),
            ("http://a/b<.*>/<y|z>", MatchingStrategy::Regexp, false),
            ("http://a/b/<*>", MatchingStrategy::Glob, true),
            ("http://a/b/<{x,b}>", MatchingStrategy::Glob, true),
            // These look before where they start: the prefix stays in the regex.
            ("http://a/b<\\B/.*>", MatchingStrategy::Regexp, false),
            ("http://a/b/<\\b.*>", MatchingStrategy::Regexp, false),
            ("http://a/b/<(?:^|x).*>", MatchingStrategy::Regexp, false),
        ];
        for (source, strategy, stripped) in cases {
            let pattern = Pattern::compile(source, strategy).unwrap();
            assert_eq!(pattern.strip_prefix, stripped, "{source}");
            let whole = whole_regex(source, strategy);
            for url in urls {
                assert_eq!(
                    pattern.is_match(url).unwrap(),
                    whole.is_match(url).unwrap(),
                    "{source} {url:?}"
                );
                let expected = whole.captures(url).unwrap().map(|c| match strategy {
                    MatchingStrategy::Regexp => c
                        .iter()
                        .skip(1)
                        .map(|g| g.map(|m| m.as_str().to_owned()).unwrap_or_default())
                        .collect::<Vec<_>>(),
                    MatchingStrategy::Glob => Vec::new(),
                });
                assert_eq!(pattern.captures(url).unwrap(), expected, "{source} {url:?}");
            }
        }
    }

    #[test]
    fn prefix_then_anything_agrees_with_the_regex() -> Result<(), PatternError> {
        let urls = [
            "http://a/",
            "http://a/b/c.txt",
            "http://a",
            "http://b/x",
            "http://a/x\ny",
            "http://a/x\r",
            "http://a/é/ü",
            "",
            "xhttp://a/b",
        ];
        for (source, strategy, fast) in [
            ("http://a/<.*>", MatchingStrategy::Regexp, true),
            ("<.*>", MatchingStrategy::Regexp, true),
            ("http://a/<**>", MatchingStrategy::Glob, true),
            ("http://a/<.+>", MatchingStrategy::Regexp, false),
            ("http://a/<*>", MatchingStrategy::Glob, false),
            ("http://a/<.*>/x", MatchingStrategy::Regexp, false),
            ("<.*>/<.*>", MatchingStrategy::Regexp, false),
        ] {
            let pattern = Pattern::compile(source, strategy)?;
            assert_eq!(pattern.regex.is_none(), fast, "{source}");
            if !fast {
                continue;
            }
            // The regex the pattern stands for, built as every other pattern's is.
            let (prefix, inner) = source.split_once('<').unwrap_or_default();
            let inner = inner.trim_end_matches('>');
            let inner = match strategy {
                MatchingStrategy::Regexp => inner.to_owned(),
                MatchingStrategy::Glob => glob_to_regex(inner)?,
            };
            let regex = fancy_regex::Regex::new(&format!("^{}({inner})$", regex::escape(prefix)))
                .map_err(|e| PatternError::Invalid {
                strategy: "regexp",
                part: source.to_owned(),
                reason: e.to_string(),
            })?;
            for url in urls {
                let by_regex = regex.is_match(url).unwrap_or(false);
                assert_eq!(
                    pattern.is_match(url).ok(),
                    Some(by_regex),
                    "{source} {url:?}"
                );
                let groups = regex.captures(url).ok().flatten().map(|c| {
                    c.iter()
                        .skip(1)
                        .map(|g| g.map(|m| m.as_str().to_owned()).unwrap_or_default())
                        .collect::<Vec<_>>()
                });
                let expected = match strategy {
                    MatchingStrategy::Regexp => groups,
                    MatchingStrategy::Glob => groups.map(|_| Vec::new()),
                };
                assert_eq!(
                    pattern.captures(url).ok().flatten(),
                    expected,
                    "{source} {url:?}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn regexp_cases() {
        use MatchingStrategy::Regexp as R;
        let cases: &[(&str, &str, bool)] = &[
            ("http://a/<.*>", "http://a/b/c", true),
            ("http://a/<.*>", "http://a/", true),
            ("http://a/b", "http://a/b", true),
            ("http://a/b", "http://a/bc", false),
            ("http://a/b", "xhttp://a/b", false),
            ("http://a.b/c", "http://aXb/c", false),
            ("http://a/<(?!admin).*>", "http://a/users", true),
            ("http://a/<(?!admin).*>", "http://a/admin/x", false),
            ("http://a/<[0-9]+>", "http://a/12", true),
            ("http://a/<[0-9]+>", "http://a/12a", false),
            ("http://a/<[[:digit:]]+>", "http://a/12", true),
            ("<https|http>://a/<.*>", "https://a/x", true),
            ("<https|http>://a/<.*>", "ftp://a/x", false),
            (
                "http://<127\\.0\\.0\\.1|localhost>:4455/p",
                "http://localhost:4455/p",
                true,
            ),
            ("http://a/<a|b>/<c|d>", "http://a/b/d", true),
            ("http://a/<a<b>>", "http://a/a<b>", true),
        ];
        for (pattern, url, expected) in cases {
            assert_eq!(matches(pattern, R, url), *expected, "{pattern} vs {url}");
        }
    }

    #[test]
    fn glob_cases() {
        use MatchingStrategy::Glob as G;
        let cases: &[(&str, &str, bool)] = &[
            ("http://a/<*>", "http://a/b", true),
            ("http://a/<*>", "http://a/file.txt", false),
            ("http://a/<*>", "http://a/b/c", false),
            ("http://a/<**>", "http://a/b/c.txt", true),
            ("http://a/<?>", "http://a/b", true),
            ("http://a/<?>", "http://a/bc", false),
            ("http://a/<[abc]>", "http://a/b", true),
            ("http://a/<[!abc]>", "http://a/b", false),
            ("http://a/<[!abc]>", "http://a/d", true),
            ("http://a/<[a-c]>x", "http://a/cx", true),
            ("http://a/<{foo,bar}>", "http://a/bar", true),
            ("http://a/<{foo,bar}>", "http://a/baz", false),
            ("http://<*>.com/x", "http://a.com/x", true),
            ("http://<*>.com/x", "http://a.b.com/x", false),
            ("http://a.b/x", "http://aXb/x", false),
        ];
        for (pattern, url, expected) in cases {
            assert_eq!(matches(pattern, G, url), *expected, "{pattern} vs {url}");
        }
    }

    #[test]
    fn capture_groups_are_exposed_in_order() -> Result<(), Box<dyn std::error::Error>> {
        let p = Pattern::compile("http://a/<[a-z]+>/<[0-9]+>", MatchingStrategy::Regexp)?;
        assert_eq!(
            p.captures("http://a/users/42")?,
            Some(vec!["users".to_owned(), "42".to_owned()])
        );
        let g = Pattern::compile("http://a/<*>", MatchingStrategy::Glob)?;
        assert_eq!(g.captures("http://a/x")?, Some(vec![]));
        Ok(())
    }

    #[test]
    fn broken_patterns_are_rejected() {
        for (pattern, strategy) in [
            ("http://a/<.*", MatchingStrategy::Regexp),
            ("http://a/.*>", MatchingStrategy::Regexp),
            ("http://a/<(.*>", MatchingStrategy::Regexp),
            ("http://a/<[a>", MatchingStrategy::Glob),
            ("http://a/<{a,b>", MatchingStrategy::Glob),
        ] {
            assert!(Pattern::compile(pattern, strategy).is_err(), "{pattern}");
        }
    }

    #[test]
    fn literal_prefix_is_text_before_first_delimiter() -> Result<(), PatternError> {
        let p = Pattern::compile("http://a/b/<.*>", MatchingStrategy::Regexp)?;
        assert_eq!(p.literal_prefix(), "http://a/b/");
        let p = Pattern::compile("<.*>", MatchingStrategy::Regexp)?;
        assert_eq!(p.literal_prefix(), "");
        let p = Pattern::compile("<https|http>://a.example/<.*>/x", MatchingStrategy::Regexp)?;
        assert_eq!(p.longest_literal(), "://a.example/");
        Ok(())
    }
}
