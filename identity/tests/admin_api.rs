//! The admin API over loopback HTTP, against SQLite and PostgreSQL: identity CRUD and JSON Patch,
//! password imports (bcrypt, argon2id, pbkdf2) then login and re-hash, pagination, admin session
//! management, and the caller's own `/sessions`.

mod support;

use serde_json::{Value, json};
use support::{Db, TestServer, api_client};

const PASSWORD: &str = "correct horse battery staple";

async fn admin(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = api_client().request(method, server.admin_url(path));
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

async fn login(server: &TestServer, identifier: &str, password: &str) -> (u16, Value) {
    let flow: Value = api_client()
        .get(server.url("/self-service/login/api"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = api_client()
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "identifier": identifier, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn whoami_status(server: &TestServer, token: &str) -> u16 {
    support::api_whoami(&server.public, token).await.0
}

async fn identity_crud(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    use reqwest::Method;
    let (status, created, headers) = admin(
        &server,
        Method::POST,
        "/admin/identities",
        Some(json!({
            "schema_id": "default",
            "traits": {"email": "ivy@example.com"},
            "metadata_public": {"plan": "free"},
            "metadata_admin": {"note": "vip"},
            "credentials": {"password": {"config": {"password": PASSWORD}}}
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/admin/identities/{id}"))
    );
    assert_eq!(
        created["credentials"]["password"]["identifiers"],
        json!(["ivy@example.com"])
    );
    assert_eq!(created["credentials"]["password"]["config"], json!({}));
    assert_eq!(created["metadata_admin"]["note"], "vip");

    let (status, got, _) = admin(
        &server,
        Method::GET,
        &format!("/admin/identities/{id}?include_credential=password"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        got["credentials"]["password"]["config"]["hashed_password"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$")
    );
    assert_eq!(login(&server, "ivy@example.com", PASSWORD).await.0, 200);

    // Duplicates conflict; invalid traits are a 400 with the reason.
    let (status, body, _) = admin(
        &server,
        Method::POST,
        "/admin/identities",
        Some(json!({
            "schema_id": "default", "traits": {"email": "IVY@example.com"},
            "credentials": {"password": {"config": {"password": PASSWORD}}}
        })),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body, _) = admin(
        &server,
        Method::POST,
        "/admin/identities",
        Some(json!({
            "schema_id": "default", "traits": {"email": "not-an-email"}
        })),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("traits.email")
    );

    // PUT moves the login identifier with the trait.
    let (status, updated, _) = admin(
        &server,
        Method::PUT,
        &format!("/admin/identities/{id}"),
        Some(json!({
            "schema_id": "default", "state": "active", "traits": {"email": "ivy.new@example.com"}
        })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["credentials"]["password"]["identifiers"],
        json!(["ivy.new@example.com"])
    );
    assert_eq!(login(&server, "ivy@example.com", PASSWORD).await.0, 400);
    assert_eq!(login(&server, "ivy.new@example.com", PASSWORD).await.0, 200);

    // JSON Patch.
    let (status, patched, _) = admin(
        &server,
        Method::PATCH,
        &format!("/admin/identities/{id}"),
        Some(json!([
            {"op": "replace", "path": "/traits/email", "value": "ivy.patched@example.com"},
            {"op": "add", "path": "/metadata_public", "value": {"plan": "pro"}}
        ])),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["traits"]["email"], "ivy.patched@example.com");
    assert_eq!(patched["metadata_public"]["plan"], "pro");
    let (status, _, _) = admin(
        &server,
        Method::PATCH,
        &format!("/admin/identities/{id}"),
        Some(json!([
            {"op": "replace", "path": "/id", "value": "x"}
        ])),
    )
    .await;
    assert_eq!(status, 400);

    // Deactivating the identity makes its sessions inactive at once.
    let (_, session) = login(&server, "ivy.patched@example.com", PASSWORD).await;
    let token = session["session_token"].as_str().unwrap().to_owned();
    assert_eq!(whoami_status(&server, &token).await, 200);
    let (status, _, _) = admin(
        &server,
        Method::PATCH,
        &format!("/admin/identities/{id}"),
        Some(json!([
            {"op": "replace", "path": "/state", "value": "inactive"}
        ])),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(whoami_status(&server, &token).await, 401);

    // Unprefixed admin paths work on the admin port; the public port redirects.
    let (status, _, _) = admin(&server, Method::GET, &format!("/identities/{id}"), None).await;
    assert_eq!(status, 200);
    let redirect = api_client()
        .get(server.url("/admin/identities"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 307);

    let (status, _, _) = admin(
        &server,
        Method::DELETE,
        &format!("/admin/identities/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, _) = admin(
        &server,
        Method::GET,
        &format!("/admin/identities/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = admin(
        &server,
        Method::DELETE,
        &format!("/admin/identities/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}
dual_db_test!(
    admin_identity_create_get_update_patch_delete,
    super::identity_crud
);

fn argon2_phc(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"fixed-salt-16byt").unwrap();
    let params = argon2::Params::new(2048, 2, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn pbkdf2_phc(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"fixed-salt-16byt").unwrap();
    let params = pbkdf2::Params {
        rounds: 1000,
        output_length: 32,
    };
    pbkdf2::Pbkdf2
        .hash_password_customized(password.as_bytes(), None, None, params, &salt)
        .unwrap()
        .to_string()
}

async fn imports(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    use reqwest::Method;
    let cases = [
        ("bcrypt@example.com", bcrypt::hash(PASSWORD, 4).unwrap()),
        ("argon@example.com", argon2_phc(PASSWORD)),
        ("pbkdf2@example.com", pbkdf2_phc(PASSWORD)),
    ];
    for (email, hash) in cases {
        let (status, created, _) = admin(
            &server,
            Method::POST,
            "/admin/identities",
            Some(json!({
                "schema_id": "default", "traits": {"email": email},
                "credentials": {"password": {"config": {"hashed_password": hash}}}
            })),
        )
        .await;
        assert_eq!(status, 201, "{email}: {created}");
        let id = created["id"].as_str().unwrap();
        assert_eq!(
            login(&server, email, "wrong password!!").await.0,
            400,
            "{email}"
        );
        assert_eq!(login(&server, email, PASSWORD).await.0, 200, "{email}");
        let (_, got, _) = admin(
            &server,
            Method::GET,
            &format!("/admin/identities/{id}?include_credential=password"),
            None,
        )
        .await;
        let stored = got["credentials"]["password"]["config"]["hashed_password"]
            .as_str()
            .unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{email} not re-hashed: {stored}"
        );
        assert_eq!(
            login(&server, email, PASSWORD).await.0,
            200,
            "{email} after re-hash"
        );
    }
    let (status, body, _) = admin(
        &server,
        Method::POST,
        "/admin/identities",
        Some(json!({
            "schema_id": "default", "traits": {"email": "weird@example.com"},
            "credentials": {"password": {"config": {"hashed_password": "{MD4}abc"}}}
        })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
}
dual_db_test!(
    imported_bcrypt_argon2_pbkdf2_hashes_log_in_and_are_rehashed,
    super::imports
);

async fn pagination(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    use reqwest::Method;
    for n in 0..3 {
        let (status, _, _) = admin(
            &server,
            Method::POST,
            "/admin/identities",
            Some(json!({
                "schema_id": "default", "traits": {"email": format!("p{n}@example.com")}
            })),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, first, headers) =
        admin(&server, Method::GET, "/admin/identities?page_size=2", None).await;
    assert_eq!(status, 200);
    assert_eq!(first.as_array().unwrap().len(), 2);
    let link = headers["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("rel=\"first\"") && link.contains("rel=\"next\""),
        "{link}"
    );
    let next = link
        .split(',')
        .find(|l| l.contains("rel=\"next\""))
        .and_then(|l| l.split(['<', '>']).nth(1))
        .unwrap()
        .to_owned();
    let response = api_client().get(&next).send().await.unwrap();
    assert!(
        !response.headers()["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"next\"")
    );
    let second: Value = response.json().await.unwrap();
    assert_eq!(second.as_array().unwrap().len(), 1);
    let mut ids: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .chain(second.as_array().unwrap())
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let (_, found, _) = admin(
        &server,
        Method::GET,
        "/admin/identities?credentials_identifier=P1@example.com",
        None,
    )
    .await;
    assert_eq!(
        found.as_array().unwrap().len(),
        0,
        "no password credential, no identifier"
    );
    server.stop().await;
}
dual_db_test!(
    admin_identity_list_is_paginated_with_link_headers,
    super::pagination
);

async fn sessions(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    use reqwest::Method;
    let (status, created, _) = admin(
        &server,
        Method::POST,
        "/admin/identities",
        Some(json!({
            "schema_id": "default", "traits": {"email": "sam@example.com"},
            "credentials": {"password": {"config": {"password": PASSWORD}}}
        })),
    )
    .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, a) = login(&server, "sam@example.com", PASSWORD).await;
    let (_, b) = login(&server, "sam@example.com", PASSWORD).await;
    let (_, c) = login(&server, "sam@example.com", PASSWORD).await;
    let token = |s: &Value| s["session_token"].as_str().unwrap().to_owned();
    let sid = |s: &Value| s["session"]["id"].as_str().unwrap().to_owned();

    let (status, list, _) = admin(
        &server,
        Method::GET,
        &format!("/admin/identities/{id}/sessions"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 3);
    let (_, all, _) = admin(&server, Method::GET, "/admin/sessions?active=true", None).await;
    assert_eq!(all.as_array().unwrap().len(), 3);

    let (status, got, _) = admin(
        &server,
        Method::GET,
        &format!("/admin/sessions/{}", sid(&a)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got["identity"]["id"], id.as_str());
    let (status, extended, _) = admin(
        &server,
        Method::PATCH,
        &format!("/admin/sessions/{}/extend", sid(&a)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(extended["expires_at"].as_str().unwrap() >= got["expires_at"].as_str().unwrap());

    // The caller's own sessions: the current one is excluded and cannot be revoked here.
    let mine: Value = api_client()
        .get(server.url("/sessions"))
        .header("X-Session-Token", token(&a))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 2);
    let current = api_client()
        .delete(server.url(&format!("/sessions/{}", sid(&a))))
        .header("X-Session-Token", token(&a))
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), 400);
    let other = api_client()
        .delete(server.url(&format!("/sessions/{}", sid(&b))))
        .header("X-Session-Token", token(&a))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 204);
    assert_eq!(whoami_status(&server, &token(&b)).await, 401);

    // Admin revocation takes effect on whoami at once.
    let (status, _, _) = admin(
        &server,
        Method::DELETE,
        &format!("/admin/sessions/{}", sid(&c)),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(whoami_status(&server, &token(&c)).await, 401);
    let (_, d) = login(&server, "sam@example.com", PASSWORD).await;
    let revoked: Value = api_client()
        .delete(server.url("/sessions"))
        .header("X-Session-Token", token(&a))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["count"], 1);
    assert_eq!(whoami_status(&server, &token(&d)).await, 401);
    assert_eq!(whoami_status(&server, &token(&a)).await, 200);

    let (status, _, _) = admin(
        &server,
        Method::DELETE,
        &format!("/admin/identities/{id}/sessions"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(whoami_status(&server, &token(&a)).await, 401);
    let (status, _, _) = admin(
        &server,
        Method::GET,
        &format!("/admin/sessions/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}
dual_db_test!(admin_and_self_service_session_management, super::sessions);

fn links(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers["link"]
        .to_str()
        .unwrap()
        .split(',')
        .map(|l| {
            let url = l.split(['<', '>']).nth(1).unwrap().to_owned();
            let rel = l
                .split("rel=\"")
                .nth(1)
                .unwrap()
                .trim_end_matches('"')
                .to_owned();
            (rel, url)
        })
        .collect()
}

/// Kratos' deprecated `page`/`per_page` on `/admin/identities`, `/sessions` and `/schemas`:
/// 0-based pages, `X-Total-Count`, `Link` with first/prev/next/last, 400 beyond 1 000 items;
/// the listing carries each identity's credentials (fetched for the whole page at once).
async fn legacy_pagination(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    use reqwest::Method;
    for n in 0..5 {
        let (status, body, _) = admin(
            &server,
            Method::POST,
            "/admin/identities",
            Some(json!({
                "schema_id": "default", "traits": {"email": format!("legacy{n}@example.com")},
                "credentials": {"password": {"config": {"password": PASSWORD}}}
            })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, page0, headers) = admin(
        &server,
        Method::GET,
        "/admin/identities?page=0&per_page=2",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page0}");
    assert_eq!(page0.as_array().unwrap().len(), 2);
    assert_eq!(headers["x-total-count"], "5");
    let rels = links(&headers);
    let rel = |name: &str| rels.iter().find(|(r, _)| r == name).map(|(_, u)| u.clone());
    assert!(
        rel("first").unwrap().ends_with("page=0&per_page=2"),
        "{rels:?}"
    );
    assert!(
        rel("next").unwrap().ends_with("page=1&per_page=2"),
        "{rels:?}"
    );
    assert!(
        rel("last").unwrap().ends_with("page=2&per_page=2"),
        "{rels:?}"
    );
    assert!(rel("prev").is_none(), "{rels:?}");
    for identity in page0.as_array().unwrap() {
        let identifiers = &identity["credentials"]["password"]["identifiers"];
        assert_eq!(
            identifiers[0].as_str().unwrap(),
            identity["traits"]["email"].as_str().unwrap(),
            "{identity}"
        );
        assert!(
            identity["credentials"]["password"].get("config").is_none()
                || identity["credentials"]["password"]["config"] == json!({}),
            "{identity}"
        );
    }
    let mut ids: Vec<String> = Vec::new();
    for page in 0..3 {
        let (status, list, headers) = admin(
            &server,
            Method::GET,
            &format!("/admin/identities?page={page}&per_page=2"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let rels = links(&headers);
        let has = |name: &str| rels.iter().any(|(r, _)| r == name);
        assert_eq!(has("next"), page < 2, "page {page}: {rels:?}");
        assert_eq!(has("prev"), page > 0, "page {page}: {rels:?}");
        ids.extend(
            list.as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned()),
        );
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((ids.len(), unique.len()), (5, 5), "{ids:?}");
    // Past the end: an empty page, not an error.
    let (status, beyond, _) = admin(
        &server,
        Method::GET,
        "/admin/identities?page=7&per_page=2",
        None,
    )
    .await;
    assert_eq!((status, beyond), (200, json!([])));
    let (status, error, _) = admin(
        &server,
        Method::GET,
        "/admin/identities?page=3&per_page=500",
        None,
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("page_token and page_size"),
        "{error}"
    );
    // `page_size` wins over `page`: keyset pages, no X-Total-Count.
    let (_, list, headers) = admin(
        &server,
        Method::GET,
        "/admin/identities?page=1&page_size=4",
        None,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 4);
    assert!(headers.get("x-total-count").is_none());

    // The caller's own other sessions: three logins, the current one left out of the count.
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (status, body) = login(&server, "legacy0@example.com", PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["session_token"].as_str().unwrap().to_owned());
    }
    let mine = |query: &'static str| {
        let token = tokens[2].clone();
        let url = server.url(&format!("/sessions{query}"));
        async move {
            let response = api_client()
                .get(url)
                .header("X-Session-Token", token)
                .send()
                .await
                .unwrap();
            let headers = response.headers().clone();
            (response.json::<Value>().await.unwrap(), headers)
        }
    };
    let (first, headers) = mine("?page=0&per_page=1").await;
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(headers["x-total-count"], "2");
    let (second, _) = mine("?page=1&per_page=1").await;
    assert_eq!(second.as_array().unwrap().len(), 1);
    assert_ne!(first[0]["id"], second[0]["id"]);
    let (all, _) = mine("?page_size=10").await;
    assert_eq!(
        all.as_array().unwrap().len(),
        2,
        "the current session is left out"
    );

    // Schemas: one configured, so one page.
    let response = api_client()
        .get(server.url("/schemas?page=0&per_page=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-total-count"], "1");
    let schemas: Value = response.json().await.unwrap();
    assert_eq!(schemas[0]["id"], "default");
    let response = api_client()
        .get(server.url("/schemas?page_size=1&page_token=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), json!([]));
    server.stop().await;
}
dual_db_test!(
    legacy_page_pagination_with_total_count,
    super::legacy_pagination
);
