//! Hot reload of rule files: a change is served without restart; a broken file keeps the last
//! good set; readiness follows the loaded rules.

mod support;

use support::*;

const HANDLERS: &str = "authenticators:\n  anonymous: {enabled: true}\nauthorizers:\n  allow: {enabled: true}\n  deny: {enabled: true}\nmutators:\n  noop: {enabled: true}\n";

fn rule(id: &str, path: &str, authorizer: &str, upstream: &str) -> String {
    format!(
        "- id: {id}\n  match: {{url: 'http://<[^/]+>/{path}', methods: [GET]}}\n  upstream: {{url: '{upstream}'}}\n  authenticators: [{{handler: anonymous}}]\n  authorizer: {{handler: {authorizer}}}\n  mutators: [{{handler: noop}}]\n"
    )
}

async fn status(url: &str) -> u16 {
    client()
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_file_changes_are_applied_and_broken_files_keep_the_last_good_set() {
    let upstream = start_upstream().await;
    let gw = Gateway::start(HANDLERS, &rule("first", "a", "allow", &upstream)).await;
    let rules_path = gw.dir.path().join("rules.yml");
    let (a, b) = (format!("{}/a", gw.proxy), format!("{}/b", gw.proxy));
    assert_eq!(status(&a).await, 200);
    assert_eq!(status(&b).await, 404);

    // A new rule and a changed authorizer.
    let next = format!(
        "{}{}",
        rule("first", "a", "deny", &upstream),
        rule("second", "b", "allow", &upstream)
    );
    std::fs::write(&rules_path, next).unwrap_or_else(|e| panic!("{e}"));
    eventually("the new rules", || async { status(&b).await == 200 }).await;
    assert_eq!(status(&a).await, 403);

    // A broken file is rejected; the previous set keeps serving.
    std::fs::write(
        &rules_path,
        "- id: broken\n  match: {url: 'http://x/<.*', methods: [GET]}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let metrics = format!("{}/metrics", gw.api);
    eventually("the rejected reload", || async {
        match client().get(&metrics).send().await {
            Ok(r) => r
                .text()
                .await
                .unwrap_or_default()
                .contains("portcullis_gateway_rule_reload_errors_total 1"),
            Err(_) => false,
        }
    })
    .await;
    assert_eq!(status(&b).await, 200);
    assert_eq!(status(&a).await, 403);
    let fixed = rule("third", "c", "allow", &upstream);
    std::fs::write(&rules_path, fixed).unwrap_or_else(|e| panic!("{e}"));
    let c = format!("{}/c", gw.proxy);
    eventually("the fixed rules", || async { status(&c).await == 200 }).await;
    assert_eq!(status(&b).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_without_rules_until_a_rule_arrives() {
    let upstream = start_upstream().await;
    let gw = Gateway::start(HANDLERS, "[]").await;
    let ready = format!("{}/health/ready", gw.api);
    assert_eq!(status(&ready).await, 503);
    std::fs::write(
        gw.dir.path().join("rules.yml"),
        rule("late", "x", "allow", &upstream),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eventually("readiness", || async { status(&ready).await == 200 }).await;
}
