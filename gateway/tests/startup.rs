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

/// Ready means the proxy port takes connections: Pingora binds it after the API port, and a
/// Kubernetes Service would otherwise route traffic to a refusing port (seen in the benchmark
/// harness with 1 000 rules: ready, then "connection refused").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_once_the_proxy_port_accepts() {
    let rules = "- id: r\n  match: {url: 'http://a/<.*>', methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n";
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (proxy_port, api_port) = (free_port(), free_port());
        let config = write_files(&dir, proxy_port, api_port, HANDLERS, rules);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-gateway"))
            .args(["serve", "-c"])
            .arg(&config)
            .env("LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn gateway: {e}"));
        let ready = format!("http://127.0.0.1:{api_port}/health/ready");
        eventually("the gateway to be ready", || {
            let ready = ready.clone();
            async move {
                client()
                    .get(&ready)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        })
        .await;
        let connected = tokio::net::TcpStream::connect(("127.0.0.1", proxy_port)).await;
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            connected.is_ok(),
            "ready, but the proxy port refused: {connected:?}"
        );
    }
}
