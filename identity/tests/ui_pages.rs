//! The built-in UI over real HTTP, against SQLite and PostgreSQL: every page renders the flow's
//! nodes with bound labels and the CSRF token, validation messages sit next to their field,
//! unknown or expired flows start over, and templates can be overridden from a directory.

mod support;

use scraper::{ElementRef, Html, Selector};
use support::{Db, TestServer, browser_client};

const PASSWORD: &str = "correct horse battery staple";

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

fn attr<'a>(el: &ElementRef<'a>, name: &str) -> Option<&'a str> {
    el.value().attr(name)
}

/// Follows the page's redirects (page → `/self-service/<flow>/browser` → page with a flow) and
/// returns the final page URL and its parsed HTML.
async fn open(client: &reqwest::Client, url: &str) -> (String, Html) {
    let mut url = url.to_owned();
    for _ in 0..5 {
        let response = client.get(&url).send().await.unwrap();
        if response.status() == 303 {
            url = location(&response);
            continue;
        }
        assert_eq!(response.status(), 200, "{url}");
        let cache = response.headers()["cache-control"].to_str().unwrap();
        assert!(cache.contains("no-store"), "{cache}");
        let text = response.text().await.unwrap();
        return (url, Html::parse_document(&text));
    }
    panic!("too many redirects from {url}");
}

/// What every page must have: `lang`, one `<h1>`, each visible input labelled by a `<label for>`,
/// each form carrying a non-empty CSRF token, described-by ids that exist.
fn assert_accessible_form_page(doc: &Html) {
    assert!(
        select(doc, "html[lang]").len() == 1,
        "html has a lang attribute"
    );
    assert_eq!(select(doc, "h1").len(), 1, "exactly one h1");
    let forms = select(doc, "form");
    assert!(!forms.is_empty(), "at least one form");
    for form in &forms {
        assert!(attr(form, "action").unwrap().contains("/self-service/"));
        assert_eq!(attr(form, "method"), Some("POST"));
        let csrf: Vec<_> = form
            .select(&Selector::parse("input[type=hidden][name=csrf_token]").unwrap())
            .collect();
        assert_eq!(csrf.len(), 1, "one csrf_token per form");
        assert!(!attr(&csrf[0], "value").unwrap_or_default().is_empty());
    }
    for input in select(doc, "input:not([type=hidden])") {
        let id = attr(&input, "id").expect("visible inputs have an id");
        let labels = select(doc, &format!("label[for=\"{id}\"]"));
        assert_eq!(labels.len(), 1, "input {id} has one label");
        assert!(!labels[0].text().collect::<String>().trim().is_empty());
        if let Some(described) = attr(&input, "aria-describedby") {
            for part in described.split_whitespace() {
                assert_eq!(select(doc, &format!("#{part}")).len(), 1, "{part} exists");
            }
        }
    }
    let ids: Vec<_> = select(doc, "[id]")
        .iter()
        .map(|e| attr(e, "id").unwrap().to_owned())
        .collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "DOM ids are unique");
}

fn input_named<'a>(doc: &'a Html, name: &str) -> ElementRef<'a> {
    select(doc, &format!("input[name=\"{name}\"]"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("input {name}"))
}

fn csrf(doc: &Html) -> String {
    attr(&input_named(doc, "csrf_token"), "value")
        .unwrap()
        .to_owned()
}

fn flow_id(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "flow")
        .map(|(_, v)| v.into_owned())
        .expect("flow id in the page URL")
}

/// Signs up through the registration page and returns the browser holding the session.
async fn sign_up(server: &TestServer, email: &str) -> reqwest::Client {
    let browser = browser_client();
    let (url, doc) = open(&browser, &server.url("/ui/registration")).await;
    let response = browser
        .post(server.url(&format!(
            "/self-service/registration?flow={}",
            flow_id(&url)
        )))
        .form(&[
            ("csrf_token", csrf(&doc).as_str()),
            ("method", "password"),
            ("traits.email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    browser
}

async fn registration_page(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let browser = browser_client();
    // No flow: the page starts one, and identity sends the browser back to this page.
    let response = browser
        .get(server.url("/ui/registration"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        server.url("/self-service/registration/browser")
    );
    let (url, doc) = open(&browser, &server.url("/ui/registration")).await;
    assert!(
        url.starts_with(&server.url("/ui/registration?flow=")),
        "{url}"
    );
    assert_accessible_form_page(&doc);
    // The nodes follow the identity schema: email trait, password, submit.
    let email = input_named(&doc, "traits.email");
    assert_eq!(attr(&email, "type"), Some("email"));
    assert!(attr(&email, "required").is_some());
    let password = input_named(&doc, "password");
    assert_eq!(attr(&password, "autocomplete"), Some("new-password"));
    let submit = select(&doc, "button[type=submit][name=method]");
    assert_eq!(attr(&submit[0], "value"), Some("password"));
    let h1: String = select(&doc, "h1")[0].text().collect();
    assert_eq!(h1, "Create an account");

    // A validation failure: the message sits in the password field and describes it.
    let response = browser
        .post(server.url(&format!(
            "/self-service/registration?flow={}",
            flow_id(&url)
        )))
        .form(&[
            ("csrf_token", csrf(&doc).as_str()),
            ("method", "password"),
            ("traits.email", "ana@example.com"),
            ("password", "short"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let (again, doc) = open(&browser, &location(&response)).await;
    assert_eq!(again, url);
    assert_accessible_form_page(&doc);
    let password = input_named(&doc, "password");
    assert_eq!(attr(&password, "aria-invalid"), Some("true"));
    assert_eq!(attr(&password, "value"), None, "passwords are not echoed");
    let described = attr(&password, "aria-describedby").unwrap();
    let message = &select(&doc, &format!("#{described}"))[0];
    let text: String = message.text().collect();
    assert!(text.contains("at least 8 characters"), "{text}");
    assert_eq!(attr(message, "data-message-id"), Some("4000032"));
    // … next to its field: both in the same field container.
    let field = password.parent().and_then(ElementRef::wrap).unwrap();
    assert!(
        field
            .select(&Selector::parse(&format!("#{described}")).unwrap())
            .next()
            .is_some()
    );
    // The email field kept its value and has no error.
    let email = input_named(&doc, "traits.email");
    assert_eq!(attr(&email, "value"), Some("ana@example.com"));
    assert_eq!(attr(&email, "aria-invalid"), None);
    server.stop().await;
}
dual_db_test!(
    registration_page_renders_nodes_labels_csrf_and_field_messages,
    super::registration_page
);

async fn login_page(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    drop(sign_up(&server, "lea@example.com").await);
    let browser = browser_client();
    let (url, doc) = open(&browser, &server.url("/ui/login")).await;
    assert_accessible_form_page(&doc);
    assert_eq!(
        attr(&input_named(&doc, "password"), "autocomplete"),
        Some("current-password")
    );
    let links: Vec<_> = select(&doc, "nav a")
        .iter()
        .map(|a| attr(a, "href").unwrap().to_owned())
        .collect();
    assert!(links.contains(&server.url("/self-service/registration/browser")));
    assert!(
        !links.contains(&server.url("/self-service/recovery/browser")),
        "no recovery link while recovery is off"
    );

    // Wrong password: the flow-level message is shown as an alert.
    let response = browser
        .post(server.url(&format!("/self-service/login?flow={}", flow_id(&url))))
        .form(&[
            ("csrf_token", csrf(&doc).as_str()),
            ("method", "password"),
            ("identifier", "lea@example.com"),
            ("password", "not the password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let (_, doc) = open(&browser, &location(&response)).await;
    let alert = select(&doc, "[role=alert]");
    assert_eq!(alert.len(), 1);
    let text: String = alert[0].text().collect();
    assert!(text.contains("credentials are invalid"), "{text}");
    assert_eq!(
        attr(&input_named(&doc, "identifier"), "value"),
        Some("lea@example.com")
    );
    server.stop().await;
}
dual_db_test!(
    login_page_shows_flow_messages_as_an_alert,
    super::login_page
);

async fn unknown_flows_restart(db: Db) {
    let Some(server) = support::start(db, |c| {
        c.selfservice.flows.login.lifespan = "1ms".to_owned();
    })
    .await
    else {
        return;
    };
    let browser = browser_client();
    let return_to = server.url("/ui/welcome");
    for page in ["login", "registration", "settings"] {
        for id in ["00000000-0000-4000-8000-000000000000", "not-a-uuid"] {
            let url = reqwest::Url::parse_with_params(
                &server.url(&format!("/ui/{page}")),
                &[("flow", id), ("return_to", &return_to), ("aal", "aal1")],
            )
            .unwrap();
            let response = browser.get(url).send().await.unwrap();
            assert_eq!(response.status(), 303, "{page} {id}");
            let to = reqwest::Url::parse(&location(&response)).unwrap();
            assert_eq!(to.path(), format!("/self-service/{page}/browser"));
            let query: Vec<(String, String)> = to.query_pairs().into_owned().collect();
            assert_eq!(
                query,
                vec![
                    ("return_to".to_owned(), return_to.clone()),
                    ("aal".to_owned(), "aal1".to_owned())
                ],
                "the page's parameters pass through, its flow id does not"
            );
        }
    }
    // An expired flow (lifespan 1ms) starts over too.
    let response = browser
        .get(server.url("/self-service/login/browser"))
        .send()
        .await
        .unwrap();
    let page = location(&response);
    let response = browser.get(&page).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        server.url("/self-service/login/browser")
    );
    // A flow from another browser (no CSRF cookie for it) starts over as well.
    let stranger = browser_client();
    let response = stranger.get(&page).send().await.unwrap();
    assert_eq!(response.status(), 303);
    server.stop().await;
}
dual_db_test!(
    unknown_expired_or_foreign_flows_start_over,
    super::unknown_flows_restart
);

async fn settings_and_welcome(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let browser = sign_up(&server, "sam@example.com").await;
    let (_, doc) = open(&browser, &server.url("/ui/welcome")).await;
    let text: String = select(&doc, "main")[0].text().collect();
    assert!(text.contains("sam@example.com"), "{text}");
    let logout = select(&doc, "a#logout");
    assert!(
        attr(&logout[0], "href")
            .unwrap()
            .starts_with(&server.url("/self-service/logout?token=ory_lo_"))
    );

    let (_, doc) = open(&browser, &server.url("/ui/settings")).await;
    assert_accessible_form_page(&doc);
    let groups: Vec<_> = select(&doc, "form")
        .iter()
        .map(|f| attr(f, "data-group").unwrap().to_owned())
        .collect();
    assert!(groups.contains(&"profile".to_owned()), "{groups:?}");
    assert!(groups.contains(&"password".to_owned()), "{groups:?}");
    for form in select(&doc, "form") {
        let labelled = attr(&form, "aria-labelledby").expect("forms are titled");
        assert_eq!(select(&doc, &format!("h2#{labelled}")).len(), 1);
    }
    assert_eq!(
        attr(&input_named(&doc, "traits.email"), "value"),
        Some("sam@example.com")
    );

    // Signing out through the welcome page's link ends the session.
    let response = browser
        .get(attr(&logout[0], "href").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let (_, doc) = open(&browser, &server.url("/ui/welcome")).await;
    let text: String = select(&doc, "main")[0].text().collect();
    assert!(text.contains("not signed in"), "{text}");
    // Without a session the settings page goes through login.
    let response = browser
        .get(server.url("/ui/settings"))
        .send()
        .await
        .unwrap();
    let response = browser.get(location(&response)).send().await.unwrap();
    assert!(
        location(&response).contains("/self-service/login/browser"),
        "{}",
        location(&response)
    );
    server.stop().await;
}
dual_db_test!(
    settings_has_a_form_per_method_and_welcome_shows_the_session,
    super::settings_and_welcome
);

async fn error_and_unknown_pages(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let client = browser_client();
    let response = client
        .get(server.url("/ui/error?id=00000000-0000-4000-8000-000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc = Html::parse_document(&response.text().await.unwrap());
    assert_eq!(select(&doc, "[role=alert]").len(), 1);
    let response = client.get(server.url("/ui/nothing")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    // Identity's own redirects point at the built-in pages when no ui_url is configured.
    for flow in ["login", "registration"] {
        let response = client
            .get(server.url(&format!("/self-service/{flow}/browser")))
            .send()
            .await
            .unwrap();
        assert!(
            location(&response).starts_with(&server.url(&format!("/ui/{flow}?flow="))),
            "{}",
            location(&response)
        );
    }
    let response = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(location(&response), server.url("/ui/welcome"));
    server.stop().await;
}
dual_db_test!(
    error_page_unknown_pages_and_default_ui_urls,
    super::error_and_unknown_pages
);

async fn email_flow_pages(db: Db) {
    let Some(server) = support::start(db, |c| {
        c.selfservice.flows.recovery.enabled = true;
        c.selfservice.flows.verification.enabled = true;
    })
    .await
    else {
        return;
    };
    for (page, title) in [
        ("recovery", "Recover your account"),
        ("verification", "Verify your email address"),
    ] {
        let browser = browser_client();
        let (url, doc) = open(&browser, &server.url(&format!("/ui/{page}"))).await;
        assert!(
            url.starts_with(&server.url(&format!("/ui/{page}?flow="))),
            "{url}"
        );
        assert_accessible_form_page(&doc);
        let h1: String = select(&doc, "h1")[0].text().collect();
        assert_eq!(h1, title);
        assert_eq!(attr(&input_named(&doc, "email"), "type"), Some("email"));
        assert_eq!(
            select(
                &doc,
                "form[data-group=code] button[name=method][value=code]"
            )
            .len(),
            1
        );
        let action = server.url(&format!("/self-service/{page}?flow={}", flow_id(&url)));

        // A malformed address: the message is on the email field.
        let response = browser
            .post(&action)
            .form(&[
                ("csrf_token", csrf(&doc).as_str()),
                ("method", "code"),
                ("email", "not-an-address"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let (_, doc) = open(&browser, &location(&response)).await;
        let email = input_named(&doc, "email");
        assert_eq!(attr(&email, "aria-invalid"), Some("true"), "{page}");
        assert_eq!(attr(&email, "value"), Some("not-an-address"));

        // An address nobody has: the same "code sent" step as for a real one.
        let response = browser
            .post(&action)
            .form(&[
                ("csrf_token", csrf(&doc).as_str()),
                ("method", "code"),
                ("email", "nobody@example.com"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let (_, doc) = open(&browser, &location(&response)).await;
        assert_accessible_form_page(&doc);
        assert_eq!(select(&doc, "input[name=code]").len(), 1, "{page}");
        assert_eq!(select(&doc, "[role=status]").len(), 1, "the sent message");

        // A wrong code: an alert, and the code step again.
        let response = browser
            .post(&action)
            .form(&[
                ("csrf_token", csrf(&doc).as_str()),
                ("method", "code"),
                ("code", "000000"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let (_, doc) = open(&browser, &location(&response)).await;
        let alert: String = select(&doc, "[role=alert]")[0].text().collect();
        assert!(
            alert.contains("invalid or has already been used"),
            "{alert}"
        );
        assert_eq!(select(&doc, "input[name=code]").len(), 1);
    }
    // With recovery on, the login page links to it.
    let (_, doc) = open(&browser_client(), &server.url("/ui/login")).await;
    let links: Vec<_> = select(&doc, "nav a")
        .iter()
        .map(|a| attr(a, "href").unwrap().to_owned())
        .collect();
    assert!(links.contains(&server.url("/self-service/recovery/browser")));
    // Identity's redirects point at these pages when no ui_url is configured.
    let response = browser_client()
        .get(server.url("/self-service/recovery/browser"))
        .send()
        .await
        .unwrap();
    assert!(location(&response).starts_with(&server.url("/ui/recovery?flow=")));
    server.stop().await;
}
dual_db_test!(
    recovery_and_verification_pages_walk_the_code_steps,
    super::email_flow_pages
);

async fn template_override(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flow.html"),
        "{% extends \"layout.html\" %}{% import \"macros.html\" as ui %}\
         {% block content %}<p id=\"custom\">Custom {{ flow_name }}</p>\
         {% for form in view.forms %}<form action=\"{{ form.action }}\" method=\"POST\">\
         {% for n in form.nodes %}{{ ui.node(n) }}{% endfor %}</form>{% endfor %}{% endblock %}",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let Some(server) = support::start(db, move |c| {
        c.portcullis.ui.template_override_path = Some(path);
    })
    .await
    else {
        return;
    };
    let browser = browser_client();
    let (_, doc) = open(&browser, &server.url("/ui/login")).await;
    let custom: String = select(&doc, "#custom")[0].text().collect();
    assert_eq!(custom, "Custom login");
    // The embedded layout and node macros still apply.
    assert_accessible_form_page(&doc);
    server.stop().await;
}
dual_db_test!(
    templates_are_overridden_from_the_configured_directory,
    super::template_override
);

#[test]
fn the_override_key_is_a_known_config_key() {
    let (config, warnings) = portcullis_identity::config::Config::from_str_with_env(
        "portcullis: {ui: {template_override_path: ui-templates}}",
        std::path::PathBuf::from("/etc/portcullis"),
        &|_| None,
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        config.ui_template_dir(),
        Some(std::path::PathBuf::from("/etc/portcullis/ui-templates"))
    );
    let (config, _) = portcullis_identity::config::Config::from_str_with_env(
        "",
        std::path::PathBuf::new(),
        &|name| (name == "PORTCULLIS_UI_TEMPLATE_OVERRIDE_PATH").then(|| "/srv/ui".to_owned()),
    )
    .unwrap();
    assert_eq!(
        config.ui_template_dir(),
        Some(std::path::PathBuf::from("/srv/ui"))
    );
}
