//! A fake Kubernetes API for reconcile tests: a `tower-test` mock service behind a real
//! `kube::Client`, answering the calls the operator makes and recording every request.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use portcullis_crds::{Rule, RuleMatch, RuleSpec, Upstream};
use portcullis_operator::Context;
use portcullis_operator::evaluation::RuleEvaluator;
use portcullis_operator::leader::Leadership;
use portcullis_operator::metrics::Metrics;
use portcullis_rules::MatchingStrategy;
use portcullis_stream::Publisher;
use serde_json::{Value, json};

/// One request the operator made.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

impl Recorded {
    /// `(api group, resource[/subresource], verb)` in RBAC terms.
    pub fn rbac(&self) -> (String, String, String) {
        let parts: Vec<&str> = self.path.trim_start_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _version, rest @ ..] => (String::new(), rest.to_vec()),
            ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest.to_vec()),
            _ => (String::new(), Vec::new()),
        };
        let rest = match rest.as_slice() {
            ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail.to_vec(),
            other => other.to_vec(),
        };
        let resource = match rest.as_slice() {
            [resource, _name, sub] => format!("{resource}/{sub}"),
            [resource, ..] => (*resource).to_owned(),
            [] => String::new(),
        };
        let named = rest.len() >= 2;
        let verb = match (self.method.as_str(), named) {
            ("GET", true) => "get",
            ("GET", false) if self.query.contains("watch=true") => "watch",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PATCH", _) => "patch",
            ("PUT", _) => "update",
            ("DELETE", _) => "delete",
            _ => "unknown",
        };
        (group, resource, verb.to_owned())
    }
}

/// The fake API: objects it knows (for PATCH responses), leases, and the request log.
#[derive(Clone, Default)]
pub struct FakeApi {
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    objects: Arc<Mutex<HashMap<String, Value>>>,
    pub leases: Arc<Mutex<HashMap<String, Value>>>,
}

impl FakeApi {
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn status_patches(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
            .collect()
    }

    pub fn events(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.contains("/events"))
            .collect()
    }

    /// A client whose requests this fake answers.
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = self.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().unwrap_or_default().to_owned(),
                    content_type: parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                if let Ok(mut requests) = api.requests.lock() {
                    requests.push(recorded.clone());
                }
                let (status, body) = api.answer(&recorded);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string().into_bytes()));
                if let Ok(response) = response {
                    send.send_response(response);
                }
            }
        });
        Client::new(service, "default")
    }

    fn answer(&self, r: &Recorded) -> (StatusCode, Value) {
        let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": "not found"});
        if r.path.contains("/leases") {
            let name = r.path.rsplit('/').next().unwrap_or_default().to_owned();
            let mut leases = match self.leases.lock() {
                Ok(l) => l,
                Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, Value::Null),
            };
            return match r.method.as_str() {
                "GET" => match leases.get(&name) {
                    Some(lease) => (StatusCode::OK, lease.clone()),
                    None => (StatusCode::NOT_FOUND, not_found),
                },
                "POST" => {
                    let name = r.body["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    leases.insert(name, r.body.clone());
                    (StatusCode::CREATED, r.body.clone())
                }
                "PUT" => {
                    leases.insert(name, r.body.clone());
                    (StatusCode::OK, r.body.clone())
                }
                _ => (StatusCode::METHOD_NOT_ALLOWED, Value::Null),
            };
        }
        if r.path.contains("/events") {
            return (StatusCode::CREATED, r.body.clone());
        }
        if r.method == "PATCH" && r.path.ends_with("/status") {
            let key = r.path.trim_end_matches("/status").to_owned();
            let objects = match self.objects.lock() {
                Ok(o) => o,
                Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, Value::Null),
            };
            return match objects.get(&key) {
                Some(object) => {
                    let mut object = object.clone();
                    object["status"] = r.body["status"].clone();
                    (StatusCode::OK, object)
                }
                None => (StatusCode::NOT_FOUND, not_found),
            };
        }
        if r.method == "PATCH" && r.content_type.starts_with("application/merge-patch+json") {
            let mut objects = match self.objects.lock() {
                Ok(o) => o,
                Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, Value::Null),
            };
            return match objects.get_mut(&r.path) {
                Some(object) => {
                    json_patch::merge(object, &r.body);
                    (StatusCode::OK, object.clone())
                }
                None => (StatusCode::NOT_FOUND, not_found),
            };
        }
        (StatusCode::NOT_FOUND, not_found)
    }

    /// Makes any object known at its API `path` (so patches of it answer 200).
    pub fn know_object(&self, path: &str, object: Value) {
        if let Ok(mut objects) = self.objects.lock() {
            objects.insert(path.to_owned(), object);
        }
    }

    /// The object at `path` as the fake holds it now.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.objects.lock().ok()?.get(path).cloned()
    }

    /// Makes `rule` known to the fake (so a status patch on it answers 200).
    pub fn know_rule(&self, rule: &Rule) {
        let path = format!(
            "/apis/portcullis.dev/v1alpha1/namespaces/{}/rules/{}",
            rule.metadata.namespace.as_deref().unwrap_or_default(),
            rule.metadata.name.as_deref().unwrap_or_default()
        );
        if let (Ok(mut objects), Ok(value)) = (self.objects.lock(), serde_json::to_value(rule)) {
            objects.insert(path, value);
        }
    }
}

/// A Rule object as the API server would return it.
pub fn rule(name: &str, created_second: i64, url: &str) -> Rule {
    let mut rule = Rule::new(
        name,
        RuleSpec {
            matcher: RuleMatch {
                url: url.into(),
                methods: vec!["GET".into()],
            },
            upstream: Some(Upstream {
                url: "http://127.0.0.1:4460".into(),
                strip_path: None,
                preserve_host: None,
            }),
            authenticators: Some(vec![portcullis_crds::Handler {
                handler: "anonymous".into(),
                config: None,
            }]),
            authorizer: Some(portcullis_crds::Handler {
                handler: "allow".into(),
                config: None,
            }),
            mutators: None,
            errors: None,
            config_map_name: None,
        },
    );
    rule.metadata.namespace = Some("shop".into());
    rule.metadata.generation = Some(1);
    rule.metadata.uid = Some(format!("uid-{name}"));
    rule.metadata.creation_timestamp = k8s_openapi::jiff::Timestamp::from_second(created_second)
        .ok()
        .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
    rule
}

/// A synced reflector store holding `objects`.
pub fn synced_store<K>(objects: &[K]) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store::<K>();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object.clone()));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    // Once synced, the store keeps its contents and readiness without the writer.
    drop(writer);
    store
}

/// A context over `rules`, with this fake as the API and leadership as given.
pub fn context(api: &FakeApi, rules: &[Rule], leader: bool) -> Arc<Context> {
    for rule in rules {
        api.know_rule(rule);
    }
    let mut ctx = Context::new(
        api.client(),
        RuleEvaluator::new(MatchingStrategy::Regexp),
        Publisher::new(),
        Arc::new(Metrics::new()),
        Leadership::new(leader),
    );
    ctx.rules = vec![synced_store(rules)];
    Arc::new(ctx)
}

/// A synced reflector store of dynamic objects (`--oathkeeper-compat` rules).
pub fn synced_dynamic_store(
    objects: &[kube::api::DynamicObject],
    resource: &kube::api::ApiResource,
) -> Store<kube::api::DynamicObject> {
    let mut writer = reflector::store::Writer::new(resource.clone());
    let store = writer.as_reader();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object.clone()));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    store
}
