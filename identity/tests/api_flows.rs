//! Native (API) self-service flows over loopback HTTP, each against SQLite and PostgreSQL:
//! registration → login → whoami (cookie, X-Session-Token, Bearer) → logout → 401, and the
//! validation failures (wrong password, duplicate, invalid traits, short password, expiry).

mod support;

use serde_json::{Value, json};
use support::{Db, TestServer, api_client};

const PASSWORD: &str = "correct horse battery staple";

async fn create_flow(server: &TestServer, kind: &str) -> Value {
    let response = api_client()
        .get(server.url(&format!("/self-service/{kind}/api")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn submit(_server: &TestServer, flow: &Value, body: Value) -> (u16, Value) {
    let action = flow["ui"]["action"].as_str().unwrap();
    let response = api_client().post(action).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn register(server: &TestServer, email: &str, password: &str) -> (u16, Value) {
    let flow = create_flow(server, "registration").await;
    submit(
        server,
        &flow,
        json!({"method": "password", "password": password, "traits": {"email": email}}),
    )
    .await
}

fn node_messages(flow: &Value, name: &str) -> Vec<u64> {
    flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == name)
        .map(|n| {
            n["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_u64().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

fn ui_messages(flow: &Value) -> Vec<u64> {
    flow["ui"]["messages"]
        .as_array()
        .map(|l| l.iter().map(|m| m["id"].as_u64().unwrap()).collect())
        .unwrap_or_default()
}

async fn whoami(server: &TestServer, header: (&str, String)) -> (u16, Value) {
    let response = api_client()
        .get(server.url("/sessions/whoami"))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn full_native_journey(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let flow = create_flow(&server, "registration").await;
    assert_eq!(flow["type"], "api");
    assert_eq!(flow["state"], "choose_method");
    assert!(flow["ui"]["action"].as_str().unwrap().ends_with(&format!(
        "/self-service/registration?flow={}",
        flow["id"].as_str().unwrap()
    )));
    let names: Vec<&str> = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["attributes"]["name"].as_str().unwrap())
        .collect();
    for expected in ["csrf_token", "traits.email", "password", "method"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let fetched = api_client()
        .get(server.url(&format!(
            "/self-service/registration/flows?id={}",
            flow["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);

    let (status, registered) = submit(
        &server,
        &flow,
        json!({"method": "password", "password": PASSWORD, "traits": {"email": "Alice@Example.com"}}),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let identity_id = registered["identity"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        registered["identity"]["traits"]["email"],
        "Alice@Example.com"
    );
    assert_eq!(registered["identity"]["state"], "active");
    assert_eq!(registered["identity"]["schema_id"], "default");
    assert!(
        registered["session_token"]
            .as_str()
            .unwrap()
            .starts_with("ory_st_")
    );
    assert_eq!(
        registered["session"]["identity"]["id"],
        identity_id.as_str()
    );
    assert_eq!(
        registered["continue_with"][0]["action"],
        "set_ory_session_token"
    );

    let login = create_flow(&server, "login").await;
    let (status, logged_in) = submit(
        &server,
        &login,
        json!({"method": "password", "identifier": "alice@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{logged_in}");
    let token = logged_in["session_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ory_st_") && token.len() == 39);
    assert_eq!(logged_in["session"]["active"], true);
    assert_eq!(
        logged_in["session"]["authenticator_assurance_level"],
        "aal1"
    );
    assert_eq!(
        logged_in["session"]["authentication_methods"][0]["method"],
        "password"
    );

    // An API session token is not a cookie: the session cookie is signed with secrets.cookie,
    // so the raw token in its place is no session.
    let (status, _) = whoami(&server, ("Cookie", format!("ory_kratos_session={token}"))).await;
    assert_eq!(status, 401);
    for header in [
        ("X-Session-Token", token.clone()),
        ("Authorization", format!("Bearer {token}")),
    ] {
        let (status, session) = whoami(&server, header).await;
        assert_eq!(status, 200, "{session}");
        assert_eq!(session["id"], logged_in["session"]["id"]);
        assert_eq!(session["identity"]["id"], identity_id.as_str());
        assert_eq!(session["identity"]["traits"]["email"], "Alice@Example.com");
        assert!(
            session["identity"]["schema_url"]
                .as_str()
                .unwrap()
                .ends_with("/schemas/ZGVmYXVsdA")
        );
        assert!(session["expires_at"].is_string() && session["authenticated_at"].is_string());
    }

    let logout = api_client()
        .delete(server.url("/self-service/logout/api"))
        .json(&json!({"session_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let (status, body) = whoami(&server, ("X-Session-Token", token.clone())).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["id"], "session_inactive");
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["status"], "Unauthorized");
    assert_eq!(
        body["error"]["message"],
        "The request could not be authorized"
    );
    let again = api_client()
        .delete(server.url("/self-service/logout/api"))
        .json(&json!({"session_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 403);
    server.stop().await;
}
dual_db_test!(registration_login_whoami_logout, super::full_native_journey);

async fn wrong_credentials(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    assert_eq!(register(&server, "bob@example.com", PASSWORD).await.0, 200);
    for (identifier, password) in [
        ("bob@example.com", "not the right password"),
        ("nobody@example.com", PASSWORD),
    ] {
        let login = create_flow(&server, "login").await;
        let (status, flow) = submit(
            &server,
            &login,
            json!({"method": "password", "identifier": identifier, "password": password}),
        )
        .await;
        assert_eq!(status, 400, "{flow}");
        assert_eq!(flow["id"], login["id"]);
        assert_eq!(ui_messages(&flow), vec![4000006]);
        let identifier_node = flow["ui"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["attributes"]["name"] == "identifier")
            .unwrap();
        assert_eq!(identifier_node["attributes"]["value"], identifier);
    }
    server.stop().await;
}
dual_db_test!(
    wrong_password_or_unknown_user_is_400_with_4000006,
    super::wrong_credentials
);

async fn duplicate(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    assert_eq!(
        register(&server, "carol@example.com", PASSWORD).await.0,
        200
    );
    let (status, flow) = register(&server, "CAROL@example.com", PASSWORD).await;
    assert_eq!(status, 400, "{flow}");
    assert_eq!(ui_messages(&flow), vec![4000007]);
    server.stop().await;
}
dual_db_test!(duplicate_email_is_400_with_4000007, super::duplicate);

async fn invalid_traits(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let (status, flow) = register(&server, "not-an-email", PASSWORD).await;
    assert_eq!(status, 400, "{flow}");
    assert!(!node_messages(&flow, "traits.email").is_empty(), "{flow}");
    let node = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.email")
        .unwrap();
    assert_eq!(node["attributes"]["value"], "not-an-email");

    let flow = create_flow(&server, "registration").await;
    let (status, failed) = submit(
        &server,
        &flow,
        json!({"method": "password", "password": PASSWORD, "traits": {}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(node_messages(&failed, "traits.email"), vec![4000002]);
    server.stop().await;
}
dual_db_test!(
    invalid_traits_are_400_with_message_on_trait_node,
    super::invalid_traits
);

async fn weak_passwords(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let (status, flow) = register(&server, "dave@example.com", "short").await;
    assert_eq!(status, 400);
    assert_eq!(node_messages(&flow, "password"), vec![4000032]);
    let (status, flow) = register(&server, "dave@example.com", "dave@example.com").await;
    assert_eq!(status, 400);
    assert_eq!(node_messages(&flow, "password"), vec![4000031]);
    // Nothing was written: the address is still free.
    assert_eq!(register(&server, "dave@example.com", PASSWORD).await.0, 200);
    server.stop().await;
}
dual_db_test!(
    password_too_short_or_similar_is_rejected,
    super::weak_passwords
);

async fn expired(db: Db) {
    let Some(server) = support::start(db, |c| {
        c.selfservice.flows.registration.lifespan = "0s".to_owned();
        c.selfservice.flows.login.lifespan = "0s".to_owned();
    })
    .await
    else {
        return;
    };
    let flow = create_flow(&server, "registration").await;
    let (status, body) = submit(
        &server,
        &flow,
        json!({"method": "password", "password": PASSWORD, "traits": {"email": "eve@example.com"}}),
    )
    .await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["id"], "self_service_flow_expired");
    let replacement = body["use_flow_id"].as_str().unwrap();
    assert_ne!(replacement, flow["id"].as_str().unwrap());
    let fetched = api_client()
        .get(server.url(&format!(
            "/self-service/login/flows?id={}",
            create_flow(&server, "login").await["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 410);
    server.stop().await;
}
dual_db_test!(expired_flow_returns_410, super::expired);

async fn api_flow_rejects_cookies(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let flow = create_flow(&server, "registration").await;
    let response = api_client()
        .post(flow["ui"]["action"].as_str().unwrap())
        .header("Cookie", "something=1")
        .json(&json!({"method": "password", "password": PASSWORD, "traits": {"email": "f@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(ui_messages(&body), vec![4000001]);
    server.stop().await;
}
dual_db_test!(
    api_flow_with_cookie_is_rejected,
    super::api_flow_rejects_cookies
);

async fn unknown_and_malformed(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let client = api_client();
    let missing = client
        .get(server.url(&format!(
            "/self-service/login/flows?id={}",
            uuid::Uuid::new_v4()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let flow = create_flow(&server, "login").await;
    let malformed = client
        .post(flow["ui"]["action"].as_str().unwrap())
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], 400);
    server.stop().await;
}
dual_db_test!(
    unknown_flow_is_404_and_malformed_json_is_400,
    super::unknown_and_malformed
);

async fn throttled(db: Db) {
    let Some(server) = support::start(db, |c| {
        c.selfservice.flows.login.throttle.max_attempts = 3;
    })
    .await
    else {
        return;
    };
    assert_eq!(register(&server, "tina@example.com", PASSWORD).await.0, 200);
    for _ in 0..3 {
        let login = create_flow(&server, "login").await;
        let (status, _) = submit(
            &server,
            &login,
            json!({"method": "password", "identifier": "tina@example.com", "password": "wrong password!"}),
        )
        .await;
        assert_eq!(status, 400);
    }
    let login = create_flow(&server, "login").await;
    let response = api_client()
        .post(login["ui"]["action"].as_str().unwrap())
        .json(
            &json!({"method": "password", "identifier": "TINA@example.com", "password": PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 429);
    server.stop().await;
}
dual_db_test!(
    repeated_failed_logins_are_throttled_with_429,
    super::throttled
);

async fn concurrent_duplicates(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let mut flows = Vec::new();
    for _ in 0..6 {
        flows.push(create_flow(&server, "registration").await);
    }
    let attempts = flows.into_iter().map(|flow| {
        let server_ref = &server;
        async move {
            submit(
                server_ref,
                &flow,
                json!({"method": "password", "password": PASSWORD, "traits": {"email": "race@example.com"}}),
            )
            .await
        }
    });
    let results = futures_join_all(attempts).await;
    let winners = results.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(winners, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(ui_messages(body), vec![4000007]);
    }
    let all: Value = api_client()
        .get(server.admin_url("/admin/identities"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "nothing half-written: {all}"
    );
    server.stop().await;
}
dual_db_test!(
    concurrent_duplicate_registrations_have_exactly_one_winner,
    super::concurrent_duplicates
);

/// Runs futures concurrently on the current task and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut pending = handles;
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, fut) in pending.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

async fn oversized(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let flow = create_flow(&server, "registration").await;
    let huge = "x".repeat(6 * 1024 * 1024);
    let response = api_client()
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "password": PASSWORD, "traits": {"email": "big@example.com", "pad": huge}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    server.stop().await;
}
dual_db_test!(oversized_bodies_are_413, super::oversized);
