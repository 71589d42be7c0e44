//! End-to-end test support: starts the real binaries as child processes on free loopback ports,
//! waits for their health endpoints, and stops them when the test ends.
//!
//! Nothing here is mocked: the suites in `tests/` talk HTTP to the same programs a user runs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1. The binaries bind fixed ports from their
/// config, so the suites pick ports this way; a collision shows up as a start-up failure, not as
/// a wrong result.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct ports that were free a moment ago (all held open until all are chosen).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

/// A child process that is terminated (SIGTERM, then SIGKILL) when dropped. Its output goes to a
/// log file, printed when the process fails to become ready.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create log file");
        let err = file.try_clone().expect("clone log file");
        cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// The process's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `url` until it answers 2xx; panics with the log if the process exits or 60 s pass.
    pub async fn wait_ready(&mut self, url: &str) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(resp) = client.get(url).send().await
                && resp.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.output());
            }
            if Instant::now() > deadline {
                panic!("{} not ready at {url}:\n{}", self.name, self.output());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// Where the identity service keeps its data in a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the suites use, from `PORTCULLIS_TEST_POSTGRES_URL`.
pub fn postgres_admin_url() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test and dropped when it ends.
pub struct TestDatabase {
    pub dsn: String,
    name: Option<String>,
}

impl TestDatabase {
    /// A fresh database of the given kind. `None` (with the reason printed) when PostgreSQL is
    /// not reachable and `CI` is unset; under CI an unreachable PostgreSQL fails the test.
    pub async fn create(kind: Database, dir: &Path) -> Option<TestDatabase> {
        match kind {
            Database::Sqlite => Some(TestDatabase {
                dsn: format!("sqlite://{}/identity.sqlite?mode=rwc", dir.display()),
                name: None,
            }),
            Database::Postgres => {
                use sqlx::Connection;
                let admin = postgres_admin_url();
                let mut conn = match sqlx::PgConnection::connect(&admin).await {
                    Ok(conn) => conn,
                    Err(e) if std::env::var_os("CI").is_none() => {
                        eprintln!(
                            "skipped: PostgreSQL at {admin} is not reachable ({e}); set CI=1 to make this fail"
                        );
                        return None;
                    }
                    Err(e) => panic!("PostgreSQL at {admin} is not reachable: {e}"),
                };
                let name = format!("portcullis_e2e_{}", uuid_like());
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url =
                    url::Url::parse(&admin).expect("PORTCULLIS_TEST_POSTGRES_URL is a URL");
                url.set_path(&name);
                Some(TestDatabase {
                    dsn: url.to_string(),
                    name: Some(name),
                })
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else { return };
        let admin = postgres_admin_url();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}_{}", std::process::id(), nanos)
}

/// Where the binaries under test are. Build it with [`binaries!`] from an integration test, where
/// cargo provides their paths.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub gateway: PathBuf,
    pub identity: PathBuf,
    pub operator: PathBuf,
}

/// The e2e crate's wrapper binaries, as cargo built them for this test.
#[macro_export]
macro_rules! binaries {
    () => {
        $crate::Binaries {
            gateway: env!("CARGO_BIN_EXE_pc-gateway").into(),
            identity: env!("CARGO_BIN_EXE_pc-identity").into(),
            operator: env!("CARGO_BIN_EXE_pc-operator").into(),
        }
    };
}

/// identity + demo upstream + gateway, configured like `scripts/up.sh` but on free ports and a
/// scratch directory, with the example identity schema.
pub struct Stack {
    pub identity_public: u16,
    pub identity_admin: u16,
    pub gateway_proxy: u16,
    pub gateway_api: u16,
    pub upstream: u16,
    // Field order is drop order: processes stop before the database and the directory go.
    pub gateway: Proc,
    pub demo_upstream: Proc,
    pub identity: Proc,
    bins: Binaries,
    options: StackOptions,
    _db: TestDatabase,
    pub dir: tempfile::TempDir,
}

/// The gateway's `oathkeeper.yml` for a suite: the given ports, the rule file, the session check.
fn gateway_config(
    gateway_proxy: u16,
    gateway_api: u16,
    gateway_metrics: u16,
    rules_path: &Path,
    whoami: &str,
) -> String {
    format!(
        r#"
log:
  level: debug
serve:
  proxy: {{ host: 127.0.0.1, port: {gateway_proxy} }}
  api: {{ host: 127.0.0.1, port: {gateway_api} }}
  prometheus: {{ host: 127.0.0.1, port: {gateway_metrics} }}
access_rules:
  matching_strategy: regexp
  repositories: ["file://{rules}"]
authenticators:
  anonymous: {{ enabled: true, config: {{ subject: guest }} }}
  cookie_session:
    enabled: true
    config:
      check_session_url: "{whoami}"
      preserve_path: true
      subject_from: identity.id
      extra_from: "@this"
      only: [ory_kratos_session]
  bearer_token:
    enabled: true
    config:
      check_session_url: "{whoami}"
      preserve_path: true
      subject_from: identity.id
      extra_from: "@this"
authorizers:
  allow: {{ enabled: true }}
mutators:
  noop: {{ enabled: true }}
  header: {{ enabled: true, config: {{ headers: {{}} }} }}
errors:
  fallback: [json]
  handlers:
    json: {{ enabled: true }}
"#,
        rules = rules_path.display(),
    )
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The operator's config stream, for gateways and identity started by a suite.
#[derive(Clone, Debug)]
pub struct StreamEnv {
    /// The operator's base URL (`http://127.0.0.1:<port>/`).
    pub url: String,
    /// Its bearer token.
    pub token: String,
}

impl StreamEnv {
    fn apply(&self, cmd: &mut Command, dir: &Path, name: &str) {
        cmd.env("PORTCULLIS_STREAM_URL", &self.url)
            .env("PORTCULLIS_STREAM_TOKEN", &self.token)
            .env(
                "PORTCULLIS_STREAM_CACHE",
                dir.join(format!("{name}-stream-cache.json")),
            );
    }
}

/// How a suite wants its stack.
#[derive(Clone, Debug, Default)]
pub struct StackOptions {
    /// Subscribe gateway and identity to an operator's stream (rules and identity schemas).
    pub stream: Option<StreamEnv>,
    /// Extra environment for identity (Kratos-style config overrides).
    pub identity_env: Vec<(String, String)>,
}

/// One more gateway on the same rules and stream (see [`Stack::add_gateway`]).
pub struct Gateway {
    pub proxy: u16,
    pub api: u16,
    pub proc: Proc,
}

impl Gateway {
    pub fn proxy_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.proxy)
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api)
    }
}

impl Stack {
    pub async fn start(bins: &Binaries, db: Database) -> Option<Stack> {
        Self::start_with(bins, db, StackOptions::default()).await
    }

    /// Like [`Stack::start`], with extra environment for identity (Kratos-style config overrides
    /// such as `COURIER_SMTP_CONNECTION_URI` or `SELFSERVICE_FLOWS_RECOVERY_ENABLED`).
    pub async fn start_with_env(
        bins: &Binaries,
        db: Database,
        identity_env: &[(&str, String)],
    ) -> Option<Stack> {
        let options = StackOptions {
            identity_env: identity_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            ..StackOptions::default()
        };
        Self::start_with(bins, db, options).await
    }

    pub async fn start_with(bins: &Binaries, db: Database, options: StackOptions) -> Option<Stack> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = TestDatabase::create(db, dir.path()).await?;
        let [
            identity_public,
            identity_admin,
            gateway_proxy,
            gateway_api,
            gateway_metrics,
            upstream,
        ] = free_ports();
        let schema = repo_root().join("identity/examples/local/identity.schema.json");
        let kratos = format!(
            r#"
dsn: "{dsn}"
serve:
  public: {{ base_url: "http://127.0.0.1:{identity_public}/", host: 127.0.0.1, port: {identity_public} }}
  admin: {{ base_url: "http://127.0.0.1:{identity_admin}/", host: 127.0.0.1, port: {identity_admin} }}
identity:
  default_schema_id: default
  schemas:
    - id: default
      url: "file://{schema}"
selfservice:
  default_browser_return_url: "http://127.0.0.1:{gateway_proxy}/protected/"
  methods:
    password: {{ enabled: true }}
  flows:
    registration:
      after:
        password:
          hooks: [{{ hook: session }}]
log:
  level: debug
"#,
            dsn = db.dsn,
            schema = schema.display(),
        );
        let kratos_path = dir.path().join("kratos.yml");
        std::fs::write(&kratos_path, kratos).expect("write kratos.yml");

        let whoami = format!("http://127.0.0.1:{identity_public}/sessions/whoami");
        let rules = format!(
            r#"
- id: public
  match:
    url: "http://127.0.0.1:{gateway_proxy}/public/<.*>"
    methods: [GET, POST]
  upstream:
    url: "http://127.0.0.1:{upstream}"
  authenticators: [{{ handler: anonymous }}]
  authorizer: {{ handler: allow }}
  mutators: [{{ handler: noop }}]
- id: protected
  match:
    url: "http://127.0.0.1:{gateway_proxy}/protected/<.*>"
    methods: [GET, POST]
  upstream:
    url: "http://127.0.0.1:{upstream}"
  authenticators:
    - handler: cookie_session
    - handler: bearer_token
  authorizer: {{ handler: allow }}
  mutators:
    - handler: header
      config:
        headers:
          X-User-Id: "{{{{ print .Subject }}}}"
"#
        );
        let rules_path = dir.path().join("rules.yml");
        std::fs::write(&rules_path, rules).expect("write rules.yml");
        let oathkeeper = gateway_config(
            gateway_proxy,
            gateway_api,
            gateway_metrics,
            &rules_path,
            &whoami,
        );
        let oathkeeper_path = dir.path().join("oathkeeper.yml");
        std::fs::write(&oathkeeper_path, oathkeeper).expect("write oathkeeper.yml");

        let mut cmd = Command::new(&bins.identity);
        cmd.args(["serve", "--dev", "-c"])
            .arg(&kratos_path)
            .env("SECRETS_COOKIE", "e2e-cookie-secret-0123456789abcdef")
            .env("SECRETS_CIPHER", "e2e-cipher-secret-0123456789abcd")
            .env("SECRETS_DEFAULT", "e2e-default-secret-0123456789abcdef")
            .envs(options.identity_env.iter().map(|(k, v)| (k, v)));
        if let Some(stream) = &options.stream {
            stream.apply(&mut cmd, dir.path(), "identity");
        }
        let mut identity = Proc::spawn("identity", cmd, dir.path());

        let mut cmd = Command::new(&bins.gateway);
        cmd.args(["demo-upstream", "--listen"])
            .arg(format!("127.0.0.1:{upstream}"));
        let mut demo_upstream = Proc::spawn("upstream", cmd, dir.path());

        let mut cmd = Command::new(&bins.gateway);
        cmd.args(["serve", "-c"]).arg(&oathkeeper_path);
        if let Some(stream) = &options.stream {
            stream.apply(&mut cmd, dir.path(), "gateway");
        }
        let mut gateway = Proc::spawn("gateway", cmd, dir.path());

        identity
            .wait_ready(&format!("http://127.0.0.1:{identity_public}/health/ready"))
            .await;
        demo_upstream
            .wait_ready(&format!("http://127.0.0.1:{upstream}/"))
            .await;
        gateway
            .wait_ready(&format!("http://127.0.0.1:{gateway_api}/health/ready"))
            .await;
        Some(Stack {
            identity_public,
            identity_admin,
            gateway_proxy,
            gateway_api,
            upstream,
            gateway,
            demo_upstream,
            identity,
            bins: bins.clone(),
            options,
            _db: db,
            dir,
        })
    }

    /// Starts one more gateway with this stack's rule file, session check and stream, on its
    /// own ports; ready when it returns.
    pub async fn add_gateway(&self) -> Gateway {
        let [proxy, api, metrics] = free_ports();
        let name = format!("gateway-{proxy}");
        let whoami = self.identity_url("/sessions/whoami");
        let config = gateway_config(
            proxy,
            api,
            metrics,
            &self.dir.path().join("rules.yml"),
            &whoami,
        );
        let path = self.dir.path().join(format!("{name}.yml"));
        std::fs::write(&path, config).expect("write gateway config");
        let mut cmd = Command::new(&self.bins.gateway);
        cmd.args(["serve", "-c"]).arg(&path);
        if let Some(stream) = &self.options.stream {
            stream.apply(&mut cmd, self.dir.path(), &name);
        }
        let mut proc = Proc::spawn(&name, cmd, self.dir.path());
        proc.wait_ready(&format!("http://127.0.0.1:{api}/health/ready"))
            .await;
        Gateway { proxy, api, proc }
    }

    pub fn identity_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.identity_public)
    }

    pub fn gateway_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gateway_proxy)
    }
}
