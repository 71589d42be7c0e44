//! Shared test support: real servers on loopback (a whoami stand-in, an echo upstream) and the
//! real gateway binary started as a child process on free ports.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

/// The subject the whoami stand-in returns for a valid session.
pub const USER_ID: &str = "9f2a6c1e-0000-4000-8000-000000000001";
/// A cookie value the whoami stand-in accepts.
pub const GOOD_COOKIE: &str = "ory_kratos_session=good-session";
/// A bearer token the whoami stand-in accepts.
pub const GOOD_TOKEN: &str = "good-token";

/// A loopback port that is free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Serves `app` on 127.0.0.1:0 in the current runtime; returns the base URL.
pub async fn spawn_app(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn whoami(request: Request) -> impl IntoResponse {
    let headers = request.headers();
    let cookie_ok = headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').any(|c| c.trim() == GOOD_COOKIE));
    let bearer_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {GOOD_TOKEN}"));
    let token_ok = headers
        .get("x-session-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == GOOD_TOKEN);
    if cookie_ok || bearer_ok || token_ok {
        (
            StatusCode::OK,
            Json(json!({
                "id": "session-1",
                "active": true,
                "identity": {"id": USER_ID, "traits": {"email": "ada@example.com"}},
                "path_seen": request.uri().path(),
            })),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"error": {"code": 401, "status": "Unauthorized", "message": "No valid session credentials found in the request."}}),
            ),
        )
    }
}

/// A stand-in for identity's `GET /sessions/whoami`; returns its full URL.
pub async fn start_whoami() -> String {
    let app = axum::Router::new().route("/sessions/whoami", axum::routing::any(whoami));
    format!("{}/sessions/whoami", spawn_app(app).await)
}

/// The gateway's own echo upstream, in-process; returns its base URL.
pub async fn start_upstream() -> String {
    spawn_app(axum::Router::new().fallback(portcullis_gateway::demo_upstream::echo)).await
}

/// The global handler config used by most tests.
pub fn handlers_yaml(whoami_url: &str) -> String {
    format!(
        r#"
authenticators:
  noop: {{enabled: true}}
  anonymous: {{enabled: true}}
  unauthorized: {{enabled: true}}
  cookie_session:
    enabled: true
    config:
      check_session_url: {whoami_url}
      preserve_path: true
      subject_from: identity.id
      extra_from: "@this"
  bearer_token:
    enabled: true
    config:
      check_session_url: {whoami_url}
      preserve_path: true
      subject_from: identity.id
      extra_from: "@this"
authorizers:
  allow: {{enabled: true}}
  deny: {{enabled: true}}
mutators:
  noop: {{enabled: true}}
  header: {{enabled: true}}
"#
    )
}

/// A running gateway child process.
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:<proxy port>`.
    pub proxy: String,
    /// `http://127.0.0.1:<api port>`.
    pub api: String,
    /// `http://127.0.0.1:<serve.prometheus port>`.
    pub metrics: String,
    /// The directory holding the config and rules.
    pub dir: tempfile::TempDir,
}

/// Writes `oathkeeper.yml` (with `extra_config` appended) and `rules.yml`, returns the paths.
pub fn write_files(
    dir: &tempfile::TempDir,
    proxy_port: u16,
    api_port: u16,
    extra_config: &str,
    rules: &str,
) -> PathBuf {
    write_files_with_metrics(dir, proxy_port, api_port, free_port(), extra_config, rules)
}

/// Like [`write_files`] with a chosen `serve.prometheus` port.
pub fn write_files_with_metrics(
    dir: &tempfile::TempDir,
    proxy_port: u16,
    api_port: u16,
    metrics_port: u16,
    extra_config: &str,
    rules: &str,
) -> PathBuf {
    write_files_with_repositories(
        dir,
        (proxy_port, api_port, metrics_port),
        extra_config,
        rules,
        &["file://{rules_file}"],
    )
}

/// Like [`write_files_with_metrics`] with the given `access_rules.repositories`, where
/// `{rules_file}` stands for the written `rules.yml`.
pub fn write_files_with_repositories(
    dir: &tempfile::TempDir,
    (proxy_port, api_port, metrics_port): (u16, u16, u16),
    extra_config: &str,
    rules: &str,
    repositories: &[&str],
) -> PathBuf {
    let rules_path = dir.path().join("rules.yml");
    std::fs::write(&rules_path, rules).unwrap_or_else(|e| panic!("write rules: {e}"));
    let repositories = repositories
        .iter()
        .map(|r| {
            format!(
                "{:?}",
                r.replace("{rules_file}", &rules_path.display().to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let config = format!(
        "serve:\n  proxy: {{host: 127.0.0.1, port: {proxy_port}}}\n  api: {{host: 127.0.0.1, port: {api_port}}}\n  prometheus: {{host: 127.0.0.1, port: {metrics_port}}}\naccess_rules:\n  repositories: [{repositories}]\n{extra_config}",
    );
    let config_path = dir.path().join("oathkeeper.yml");
    std::fs::write(&config_path, config).unwrap_or_else(|e| panic!("write config: {e}"));
    config_path
}

/// Runs `serve` to completion (for start-up failures): exit status and stderr.
pub fn serve_expecting_exit(extra_config: &str, rules: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = write_files(&dir, free_port(), free_port(), extra_config, rules);
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis-gateway"))
        .args(["serve", "-c"])
        .arg(&config)
        .env("LOG_LEVEL", "warn")
        .output()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl Gateway {
    /// Starts the gateway; `{proxy}` in `rules` is replaced by `127.0.0.1:<proxy port>`.
    pub async fn start(extra_config: &str, rules: &str) -> Gateway {
        Self::start_with_env(extra_config, rules, &[]).await
    }

    /// Like [`Gateway::start`] with extra environment variables.
    pub async fn start_with_env(extra_config: &str, rules: &str, env: &[(&str, &str)]) -> Gateway {
        Self::start_with_schemes(extra_config, rules, env, ("http", "http"), &client()).await
    }

    /// Like [`Gateway::start_with_env`] with the proxy and API URL schemes (`https` when the
    /// environment configures TLS) and the client that probes them.
    pub async fn start_with_schemes(
        extra_config: &str,
        rules: &str,
        env: &[(&str, &str)],
        (proxy_scheme, api_scheme): (&str, &str),
        probe: &reqwest::Client,
    ) -> Gateway {
        Self::start_full(
            extra_config,
            rules,
            &["file://{rules_file}"],
            env,
            (proxy_scheme, api_scheme),
            probe,
        )
        .await
    }

    /// Like [`Gateway::start`] with the given `access_rules.repositories` (`{rules_file}`
    /// stands for the `rules.yml` written from `rules`).
    pub async fn start_with_repositories(
        extra_config: &str,
        rules: &str,
        repositories: &[&str],
    ) -> Gateway {
        Self::start_full(
            extra_config,
            rules,
            repositories,
            &[],
            ("http", "http"),
            &client(),
        )
        .await
    }

    async fn start_full(
        extra_config: &str,
        rules: &str,
        repositories: &[&str],
        env: &[(&str, &str)],
        (proxy_scheme, api_scheme): (&str, &str),
        probe: &reqwest::Client,
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (proxy_port, api_port, metrics_port) = (free_port(), free_port(), free_port());
        let rules = rules.replace("{proxy}", &format!("127.0.0.1:{proxy_port}"));
        let config = write_files_with_repositories(
            &dir,
            (proxy_port, api_port, metrics_port),
            extra_config,
            &rules,
            repositories,
        );
        let child = Command::new(env!("CARGO_BIN_EXE_portcullis-gateway"))
            .args(["serve", "-c"])
            .arg(&config)
            .env("LOG_LEVEL", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn gateway: {e}"));
        let mut gateway = Gateway {
            child,
            proxy: format!("{proxy_scheme}://127.0.0.1:{proxy_port}"),
            api: format!("{api_scheme}://127.0.0.1:{api_port}"),
            metrics: format!("http://127.0.0.1:{metrics_port}"),
            dir,
        };
        gateway.wait_until_serving(probe).await;
        gateway
    }

    /// Waits until both ports answer (the proxy with anything, the API's alive check with 200).
    async fn wait_until_serving(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                panic!("gateway exited with {status}: {stderr}");
            }
            let alive = client
                .get(format!("{}/health/alive", self.api))
                .send()
                .await;
            let proxy = client.get(format!("{}/__probe", self.proxy)).send().await;
            if alive.is_ok_and(|r| r.status() == 200) && proxy.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "gateway did not start in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap_or_else(|e| panic!("wait: {e}"))
    }

    /// [`Gateway::terminate`], then everything the gateway wrote to stderr.
    pub fn terminate_and_read_stderr(&mut self) -> String {
        self.terminate();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        stderr
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that sends cookies only when told and follows no redirects.
/// The Prometheus text that `base` (the API or the metrics port) serves at `/metrics`.
pub async fn metrics_text(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("metrics: {e}"))
        .text()
        .await
        .unwrap_or_default()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// Polls `check` until it returns true or 20 s pass.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
