//! Go `text/template` syntax for handler templates (header/cookie mutators, remote authorizers).
//!
//! Existing Oathkeeper rules use expressions such as `{{ print .Subject }}`,
//! `{{ .Extra.identity.id }}`, `{{ .MatchContext.Header.Get "X-Foo" }}` and
//! `{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}`. This module parses that subset once (at
//! rule-set build time) and renders it against the session as JSON with Go's field names
//! (`Subject`, `Extra`, `Header`, `MatchContext`). Control structures (`if`, `range`) are rejected
//! at parse time rather than rendered wrongly. Missing keys and `null` render as Go renders a nil
//! interface value: `<no value>` for `{{ .Extra.missing }}`, `<nil>` through `print`; where Go
//! would fail on a field of a missing value (`{{ .Extra.missing.deep }}`) the result is also
//! `<no value>` instead of a failed request.

use serde_json::Value;

/// A template that failed to parse or render.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("template {source_text:?}: {message}")]
pub struct TemplateError {
    /// The template text.
    pub source_text: String,
    /// What is wrong.
    pub message: String,
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    Action(Vec<Command>),
}

/// One command of a pipeline: a function call or a single operand.
#[derive(Clone, Debug, PartialEq)]
enum Command {
    Call(String, Vec<Operand>),
    Operand(Operand),
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    /// `.A.B`; empty path is `.`; `method_args` set for `.Header.Get "X"`.
    Field(Vec<String>, Option<Vec<Operand>>),
    Str(String),
    Number(f64),
    Bool(bool),
    Nil,
}

const FUNCTIONS: &[&str] = &[
    "print",
    "printIndex",
    "index",
    "toJson",
    "default",
    "lower",
    "upper",
    "trim",
    "quote",
    "len",
    "urlquery",
];

impl Template {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let err = |message: String| TemplateError {
            source_text: source.to_owned(),
            message,
        };
        let mut nodes = Vec::new();
        let mut rest = source;
        let mut trim_next_text = false;
        while let Some(open) = rest.find("{{") {
            let mut text = &rest[..open];
            if trim_next_text {
                text = text.trim_start();
            }
            let mut inner_start = open + 2;
            if rest[inner_start..].starts_with("- ") {
                text = text.trim_end();
                inner_start += 1;
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text.to_owned()));
            }
            let close = rest[inner_start..]
                .find("}}")
                .ok_or_else(|| err("unclosed action".to_owned()))?
                + inner_start;
            let mut inner = &rest[inner_start..close];
            trim_next_text = false;
            if inner.ends_with(" -") {
                inner = &inner[..inner.len() - 1];
                trim_next_text = true;
            }
            let inner = inner.trim();
            if !inner.starts_with("/*") {
                nodes.push(Node::Action(parse_pipeline(inner).map_err(err)?));
            }
            rest = &rest[close + 2..];
        }
        let text = if trim_next_text {
            rest.trim_start()
        } else {
            rest
        };
        if !text.is_empty() {
            nodes.push(Node::Text(text.to_owned()));
        }
        Ok(Self {
            source: source.to_owned(),
            nodes,
        })
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders against `data` (the session with Go field names).
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        for node in &self.nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Action(commands) => {
                    let value = eval_pipeline(commands, data).map_err(|message| TemplateError {
                        source_text: self.source.clone(),
                        message,
                    })?;
                    match value {
                        Value::Null => out.push_str("<no value>"),
                        value => out.push_str(&display(&value)),
                    }
                }
            }
        }
        Ok(out)
    }
}

fn parse_pipeline(inner: &str) -> Result<Vec<Command>, String> {
    let tokens = tokenize(inner)?;
    if tokens.is_empty() {
        return Err("empty action".to_owned());
    }
    let mut commands = Vec::new();
    for segment in tokens.split(|t| t == &Token::Pipe) {
        commands.push(parse_command(segment)?);
    }
    Ok(commands)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Pipe,
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                chars.next();
            }
            '|' => {
                chars.next();
                tokens.push(Token::Pipe);
            }
            '(' | ')' => return Err("parenthesised pipelines are not supported".to_owned()),
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string".to_owned()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(other) => s.push(other),
                            None => return Err("unterminated string".to_owned()),
                        },
                        Some(other) => s.push(other),
                    }
                }
                tokens.push(Token::Str(s));
            }
            '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated raw string".to_owned()),
                        Some('`') => break,
                        Some(other) => s.push(other),
                    }
                }
                tokens.push(Token::Str(s));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, ' ' | '\t' | '\n' | '\r' | '|' | '"' | '`' | '(' | ')') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

fn parse_operand(token: &Token) -> Result<Operand, String> {
    match token {
        Token::Str(s) => Ok(Operand::Str(s.clone())),
        Token::Pipe => Err("unexpected `|`".to_owned()),
        Token::Word(w) if w == "." => Ok(Operand::Field(Vec::new(), None)),
        Token::Word(w) if w.starts_with('.') => {
            let path: Vec<String> = w[1..].split('.').map(str::to_owned).collect();
            if path.iter().any(String::is_empty) {
                return Err(format!("invalid field path {w:?}"));
            }
            Ok(Operand::Field(path, None))
        }
        Token::Word(w) if w == "true" => Ok(Operand::Bool(true)),
        Token::Word(w) if w == "false" => Ok(Operand::Bool(false)),
        Token::Word(w) if w == "nil" => Ok(Operand::Nil),
        Token::Word(w) => w
            .parse::<f64>()
            .map(Operand::Number)
            .map_err(|_| format!("unsupported word {w:?}")),
    }
}

fn parse_command(tokens: &[Token]) -> Result<Command, String> {
    let (first, args) = tokens
        .split_first()
        .ok_or_else(|| "empty command in pipeline".to_owned())?;
    if let Token::Word(name) = first {
        if matches!(
            name.as_str(),
            "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block"
        ) {
            return Err(format!("control structure `{name}` is not supported"));
        }
        if FUNCTIONS.contains(&name.as_str()) {
            let args = args.iter().map(parse_operand).collect::<Result<_, _>>()?;
            return Ok(Command::Call(name.clone(), args));
        }
        if !name.starts_with('.') && !args.is_empty() {
            return Err(format!("unknown function {name:?}"));
        }
    }
    let operand = parse_operand(first)?;
    if args.is_empty() {
        return Ok(Command::Operand(operand));
    }
    // `.Header.Get "X"`: a method call on a header map.
    match operand {
        Operand::Field(path, None) if path.last().is_some_and(|p| p == "Get") => {
            let args = args.iter().map(parse_operand).collect::<Result<_, _>>()?;
            Ok(Command::Operand(Operand::Field(path, Some(args))))
        }
        _ => Err("only `.Get` methods take arguments".to_owned()),
    }
}

fn eval_pipeline(commands: &[Command], data: &Value) -> Result<Value, String> {
    let mut previous: Option<Value> = None;
    for command in commands {
        let value = match command {
            Command::Operand(op) => {
                if previous.is_some() {
                    return Err("cannot pipe into a value".to_owned());
                }
                eval_operand(op, data)?
            }
            Command::Call(name, args) => {
                let mut values = args
                    .iter()
                    .map(|a| eval_operand(a, data))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(prev) = previous.take() {
                    values.push(prev);
                }
                call(name, &values)?
            }
        };
        previous = Some(value);
    }
    Ok(previous.unwrap_or(Value::Null))
}

fn eval_operand(op: &Operand, data: &Value) -> Result<Value, String> {
    Ok(match op {
        Operand::Str(s) => Value::String(s.clone()),
        Operand::Number(n) => serde_json::Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Operand::Bool(b) => Value::Bool(*b),
        Operand::Nil => Value::Null,
        Operand::Field(path, None) => lookup(data, path),
        Operand::Field(path, Some(args)) => {
            let parent = lookup(data, &path[..path.len().saturating_sub(1)]);
            let key = match args.first().map(|a| eval_operand(a, data)).transpose()? {
                Some(Value::String(k)) => k,
                _ => return Err("`.Get` expects one string argument".to_owned()),
            };
            header_get(&parent, &key)
        }
    })
}

fn lookup(data: &Value, path: &[String]) -> Value {
    let mut current = data;
    for key in path {
        match current.get(key.as_str()) {
            Some(v) => current = v,
            None => return Value::Null,
        }
    }
    current.clone()
}

/// Case-insensitive header lookup, first value (Go's `http.Header.Get`).
fn header_get(headers: &Value, key: &str) -> Value {
    let Some(map) = headers.as_object() else {
        return Value::String(String::new());
    };
    let found = map
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .map(|(_, v)| match v {
            Value::Array(values) => values.first().cloned().unwrap_or(Value::Null),
            other => other.clone(),
        });
    match found {
        Some(Value::Null) | None => Value::String(String::new()),
        Some(v) => v,
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
    Ok(match name {
        "print" => Value::String(go_sprint(args)),
        "printIndex" => match (arg(0), arg(1).as_f64()) {
            // Oathkeeper's printIndex: "" when out of range.
            (Value::Array(items), Some(i)) if i >= 0.0 => items
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| Value::String(String::new())),
            _ => Value::String(String::new()),
        },
        "index" => {
            let mut current = arg(0);
            for key in args.iter().skip(1) {
                current = match (&current, key) {
                    (Value::Array(items), Value::Number(n)) => n
                        .as_f64()
                        .and_then(|i| items.get(i as usize).cloned())
                        .ok_or_else(|| "index out of range".to_owned())?,
                    (Value::Object(map), Value::String(k)) => {
                        map.get(k).cloned().unwrap_or(Value::Null)
                    }
                    _ => Value::Null,
                };
            }
            current
        }
        "toJson" => Value::String(serde_json::to_string(&arg(0)).map_err(|e| e.to_string())?),
        "default" => {
            let given = arg(1);
            if is_empty(&given) { arg(0) } else { given }
        }
        "lower" => Value::String(text_or_empty(&arg(0)).to_lowercase()),
        "upper" => Value::String(text_or_empty(&arg(0)).to_uppercase()),
        "trim" => Value::String(text_or_empty(&arg(0)).trim().to_owned()),
        "quote" => Value::String(format!("{:?}", display(&arg(0)))),
        "len" => Value::from(match arg(0) {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::String(s) => s.len(),
            _ => 0,
        }),
        "urlquery" => Value::String(
            url::form_urlencoded::byte_serialize(go_sprint(args).as_bytes()).collect(),
        ),
        other => return Err(format!("unknown function {other:?}")),
    })
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in args.iter().enumerate() {
        if i > 0 && !args[i - 1].is_string() && !v.is_string() {
            out.push(' ');
        }
        out.push_str(&display(v));
    }
    out
}

/// `display`, with nothing for a missing value (string functions).
fn text_or_empty(v: &Value) -> String {
    if v.is_null() {
        String::new()
    } else {
        display(v)
    }
}

/// Go's `fmt.Sprint` of a value (`<nil>` for nil).
fn display(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(display).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => format!(
            "map[{}]",
            map.iter()
                .map(|(k, v)| format!("{k}:{}", display(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session() -> Value {
        json!({
            "Subject": "user-1",
            "Extra": {"identity": {"id": "uuid-1", "traits": {"email": "a@b.c"}}, "n": 3},
            "Header": {"X-Foo": ["bar", "baz"]},
            "MatchContext": {
                "RegexpCaptureGroups": ["users", "42"],
                "Method": "GET",
                "Header": {"Accept": ["text/html"]},
                "URL": {"Host": "a", "Path": "/users/42"}
            }
        })
    }

    #[test]
    fn renders_the_common_oathkeeper_forms() -> Result<(), TemplateError> {
        let cases = [
            ("{{ print .Subject }}", "user-1"),
            ("{{ .Subject }}", "user-1"),
            ("{{.Extra.identity.id}}", "uuid-1"),
            ("{{ .Extra.identity.traits.email }}", "a@b.c"),
            ("{{ .Extra.missing }}", "<no value>"),
            ("{{ .Extra.missing.deep }}", "<no value>"),
            ("{{ print .Extra.missing }}", "<nil>"),
            ("{{ .Extra.missing | upper }}", ""),
            ("{{ .Header.Get \"x-foo\" }}", "bar"),
            ("{{ .MatchContext.Header.Get \"Accept\" }}", "text/html"),
            ("{{ .MatchContext.Header.Get \"Nope\" }}", ""),
            ("{{ printIndex .MatchContext.RegexpCaptureGroups 1 }}", "42"),
            ("{{ printIndex .MatchContext.RegexpCaptureGroups 7 }}", ""),
            ("{{ index .MatchContext.RegexpCaptureGroups 0 }}", "users"),
            ("id={{ .Subject }};n={{ .Extra.n }}", "id=user-1;n=3"),
            (
                "{{ .Extra.identity.traits | toJson }}",
                "{\"email\":\"a@b.c\"}",
            ),
            ("{{ .Extra.nope | default \"x\" }}", "x"),
            ("{{ .Subject | upper }}", "USER-1"),
            ("a {{- .Subject -}} b", "auser-1b"),
            ("plain", "plain"),
        ];
        for (source, expected) in cases {
            assert_eq!(
                Template::parse(source)?.render(&session())?,
                expected,
                "{source}"
            );
        }
        Ok(())
    }

    #[test]
    fn broken_templates_fail_at_parse_time() {
        for source in [
            "{{ .Subject",
            "{{ if .Subject }}x{{ end }}",
            "{{ nosuchfunc .Subject }}",
            "{{ }}",
            "{{ \"unterminated }}",
        ] {
            assert!(Template::parse(source).is_err(), "{source}");
        }
    }
}
