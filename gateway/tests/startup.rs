//! Start-up failures: one line naming the file, the rule and the field, non-zero exit.

mod support;

use support::*;

const HANDLERS: &str = "authenticators:\n  anonymous: {enabled: true}\nauthorizers:\n  allow: {enabled: true}\nmutators:\n  noop: {enabled: true}\n";

#[test]
fn broken_pattern_names_file_rule_and_field() {
    let rules = r#"[{"id":"broken","match":{"url":"http://a/<.*","methods":["GET"]},
        "authenticators":[{"handler":"anonymous"}],"authorizer":{"handler":"allow"},"mutators":[{"handler":"noop"}]}]"#;
    let (status, stderr) = serve_expecting_exit(HANDLERS, rules);
    assert!(!status.success());
    let line = stderr
        .lines()
        .find(|l| l.contains("portcullis-gateway:"))
        .unwrap_or_default();
    assert!(
        line.contains("rules.yml") && line.contains("broken") && line.contains("match.url"),
        "{stderr}"
    );
}

#[test]
fn disabled_handler_is_rejected_at_start_up() {
    let rules = "- id: needs-deny\n  match: {url: 'http://a/<.*>', methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: deny}\n  mutators: [{handler: noop}]\n";
    let (status, stderr) = serve_expecting_exit(HANDLERS, rules);
    assert!(!status.success());
    assert!(
        stderr.contains("needs-deny")
            && stderr.contains("authorizer")
            && stderr.contains("disabled"),
        "{stderr}"
    );
}

#[test]
fn malformed_yaml_names_the_file() {
    let (status, stderr) = serve_expecting_exit(HANDLERS, "- id: [unclosed\n");
    assert!(!status.success());
    assert!(stderr.contains("rules.yml"), "{stderr}");
}

#[test]
fn unknown_config_key_warns_once() {
    // Invalid rules make the process exit after config parsing, so the warning is observable.
    let config = format!("{HANDLERS}tracing:\n  provider: jaeger\n");
    let (status, stderr) = serve_expecting_exit(&config, "- id: [unclosed\n");
    assert!(!status.success());
    assert_eq!(stderr.matches("\"tracing\"").count(), 1, "{stderr}");
}
