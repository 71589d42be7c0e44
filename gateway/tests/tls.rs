//! HTTPS on the proxy and API ports (`serve.{proxy,api}.tls.{cert,key}.{path,base64}`), over
//! real TLS: a test CA signs a certificate for 127.0.0.1, the client trusts only that CA.

mod support;

use base64::Engine as _;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use support::*;

/// A CA, and a server certificate (with the chain leaf + CA) and key it signed.
struct Pki {
    ca: Vec<u8>,
    chain: Vec<u8>,
    key: Vec<u8>,
}

fn certificate(
    name: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    serial: u32,
) -> X509 {
    let build = || -> Result<X509, openssl::error::ErrorStack> {
        let mut subject = X509NameBuilder::new()?;
        subject.append_entry_by_text("CN", name)?;
        let subject = subject.build();
        let mut cert = X509::builder()?;
        cert.set_version(2)?;
        let serial = BigNum::from_u32(serial)?.to_asn1_integer()?;
        cert.set_serial_number(&serial)?;
        cert.set_subject_name(&subject)?;
        cert.set_pubkey(key)?;
        let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(2)?);
        cert.set_not_before(&not_before)?;
        cert.set_not_after(&not_after)?;
        match issuer {
            Some((ca, ca_key)) => {
                cert.set_issuer_name(ca.subject_name())?;
                cert.append_extension(BasicConstraints::new().build()?)?;
                cert.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
                let san = SubjectAlternativeName::new()
                    .ip("127.0.0.1")
                    .dns("localhost")
                    .build(&cert.x509v3_context(Some(ca), None))?;
                cert.append_extension(san)?;
                cert.sign(ca_key, MessageDigest::sha256())?;
            }
            None => {
                cert.set_issuer_name(&subject)?;
                cert.append_extension(BasicConstraints::new().critical().ca().build()?)?;
                cert.sign(key, MessageDigest::sha256())?;
            }
        }
        Ok(cert.build())
    };
    build().unwrap_or_else(|e| panic!("certificate {name}: {e}"))
}

/// The server chain and key of `pki` written to `tls.crt` and `tls.key` in a new directory
/// (kept while the returned guard lives): the directory and both paths.
fn pki_files(pki: &Pki) -> (tempfile::TempDir, String, String) {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (cert_path, key_path) = (files.path().join("tls.crt"), files.path().join("tls.key"));
    std::fs::write(&cert_path, &pki.chain).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key_path, &pki.key).unwrap_or_else(|e| panic!("{e}"));
    let (cert_path, key_path) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    (files, cert_path, key_path)
}

fn pki() -> Pki {
    let ec = || PKey::ec_gen("prime256v1").unwrap_or_else(|e| panic!("key: {e}"));
    let (ca_key, server_key) = (ec(), ec());
    let ca = certificate("portcullis test CA", &ca_key, None, 1);
    let server = certificate("127.0.0.1", &server_key, Some((&ca, &ca_key)), 2);
    let pem = |cert: &X509| cert.to_pem().unwrap_or_else(|e| panic!("pem: {e}"));
    Pki {
        ca: pem(&ca),
        chain: [pem(&server), pem(&ca)].concat(),
        key: server_key
            .private_key_to_pem_pkcs8()
            .unwrap_or_else(|e| panic!("key pem: {e}")),
    }
}

fn trusting(pki: &Pki) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&pki.ca).unwrap_or_else(|e| panic!("ca: {e}"));
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .no_proxy()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

const RULES: &str = r#"
- id: tls-public
  match:
    url: https://{proxy}/<.*>
    methods: [GET]
  upstream:
    url: UPSTREAM
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators:
    - handler: header
      config:
        headers:
          X-Matched-Url: "{{ .MatchContext.URL.Scheme }}"
"#;

/// Starting with TLS on the proxy port logs no failed handshake: the readiness probe of the
/// proxy port completes one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_start_logs_no_failed_handshake() {
    let pki = pki();
    let upstream = start_upstream().await;
    let (_files, cert_path, key_path) = pki_files(&pki);
    let env = [
        ("SERVE_PROXY_TLS_CERT_PATH", cert_path.as_str()),
        ("SERVE_PROXY_TLS_KEY_PATH", key_path.as_str()),
    ];
    let client = trusting(&pki);
    let mut gw = Gateway::start_with_schemes(
        &handlers_yaml("http://127.0.0.1:9/unused"),
        &RULES.replace("UPSTREAM", &upstream),
        &env,
        ("https", "http"),
        &client,
    )
    .await;
    eventually("the gateway to be ready", || {
        let (client, url) = (client.clone(), format!("{}/health/ready", gw.api));
        async move {
            client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    let stderr = gw.terminate_and_read_stderr();
    assert!(!stderr.to_lowercase().contains("handshake"), "{stderr}");
}

/// The proxy serves HTTPS from PEM files and the API from base64 PEM (both through Ory-style
/// environment keys); rules see the `https` scheme; plain HTTP is not served on either port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_and_api_serve_https() {
    let pki = pki();
    let upstream = start_upstream().await;
    let (_files, cert_path, key_path) = pki_files(&pki);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (cert_b64, key_b64) = (b64(&pki.chain), b64(&pki.key));
    let env = [
        ("SERVE_PROXY_TLS_CERT_PATH", cert_path.as_str()),
        ("SERVE_PROXY_TLS_KEY_PATH", key_path.as_str()),
        ("SERVE_API_TLS_CERT_BASE64", cert_b64.as_str()),
        ("SERVE_API_TLS_KEY_BASE64", key_b64.as_str()),
    ];
    let client = trusting(&pki);
    let gw = Gateway::start_with_schemes(
        &handlers_yaml("http://127.0.0.1:9/unused"),
        &RULES.replace("UPSTREAM", &upstream),
        &env,
        ("https", "https"),
        &client,
    )
    .await;

    let response = client
        .get(format!("{}/hello?x=1", gw.proxy))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let echoed: serde_json::Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(echoed["path"], "/hello");
    assert_eq!(echoed["headers"]["x-matched-url"], "https");
    assert_eq!(echoed["headers"]["x-forwarded-proto"], "https");

    let ready = client
        .get(format!("{}/health/ready", gw.api))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ready.status(), 200);
    let decision = client
        .get(format!("{}/decisions/hello", gw.api))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", gw.proxy.trim_start_matches("https://"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decision.status(), 200);
    assert_eq!(decision.headers()["x-matched-url"], "https");

    // Neither port answers plain HTTP.
    for base in [&gw.proxy, &gw.api] {
        let plain = base.replacen("https://", "http://", 1);
        let answer = support::client()
            .get(format!("{plain}/health/alive"))
            .send()
            .await;
        assert!(
            answer.is_err(),
            "{plain} answered plain HTTP: {:?}",
            answer.map(|r| r.status())
        );
    }
}

/// A key that does not belong to the certificate stops start-up with a message naming the key,
/// without the key material.
#[test]
fn mismatched_key_fails_start_up() {
    let (one, other) = (pki(), pki());
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (cert_path, key_path) = (files.path().join("tls.crt"), files.path().join("tls.key"));
    std::fs::write(&cert_path, &one.chain).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key_path, &other.key).unwrap_or_else(|e| panic!("{e}"));
    let extra = format!(
        "{}\n",
        handlers_yaml("http://127.0.0.1:9/unused").trim_end()
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-gateway"))
        .args(["serve", "-c"])
        .arg(write_files(&files, free_port(), free_port(), &extra, "[]"))
        .env("LOG_LEVEL", "warn")
        .env("SERVE_PROXY_TLS_CERT_PATH", &cert_path)
        .env("SERVE_PROXY_TLS_KEY_PATH", &key_path)
        .output()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("serve.proxy.tls") && stderr.contains("does not match"),
        "{stderr}"
    );
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
}

/// An HTTPS upstream served by the test CA's certificate for `localhost`.
async fn start_https_upstream(pki: &Pki) -> u16 {
    use axum::serve::ListenerExt as _;
    let pem = portcullis_gateway::config::TlsPem {
        cert: pki.chain.clone(),
        key: pki.key.clone(),
    };
    let acceptor = portcullis_gateway::tls::acceptor_builder(&pem)
        .unwrap_or_else(|e| panic!("acceptor: {e}"))
        .build();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let port = tcp
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let listener = portcullis_gateway::tls::TlsListener::new(tcp, acceptor)
        .unwrap_or_else(|e| panic!("tls listener: {e}"));
    let app = axum::Router::new().fallback(portcullis_gateway::demo_upstream::echo);
    tokio::spawn(async move {
        let _ = axum::serve(listener.tap_io(|_| {}), app).await;
    });
    port
}

/// `https://` upstreams: the certificate is verified (here against a CA given to OpenSSL with
/// `SSL_CERT_FILE`) with the URL's host as SNI; an untrusted certificate is a 502, never a
/// plain-text fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_is_verified() {
    let pki = pki();
    let port = start_https_upstream(&pki).await;
    let rules = format!(
        r#"
- id: tls-upstream
  match: {{url: "http://{{proxy}}/<.*>", methods: [GET]}}
  upstream: {{url: "https://localhost:{port}/base"}}
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
"#
    );
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let ca_path = files.path().join("ca.pem");
    std::fs::write(&ca_path, &pki.ca).unwrap_or_else(|e| panic!("{e}"));
    let ca_path = ca_path.display().to_string();
    let handlers = handlers_yaml("http://127.0.0.1:9/unused");

    let trusted =
        Gateway::start_with_env(&handlers, &rules, &[("SSL_CERT_FILE", ca_path.as_str())]).await;
    let response = client()
        .get(format!("{}/hello", trusted.proxy))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let echoed: serde_json::Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(echoed["path"], "/base/hello");
    assert_eq!(echoed["headers"]["host"], format!("localhost:{port}"));

    let untrusted = Gateway::start(&handlers, &rules).await;
    let response = client()
        .get(format!("{}/hello", untrusted.proxy))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 502);
}
