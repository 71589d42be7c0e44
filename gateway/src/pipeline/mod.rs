//! The access pipeline: match → authenticate → authorize → mutate, shared by the proxy and
//! `/decisions`.
//!
//! A [`Snapshot`] is a compiled [`RuleSet`] plus, per rule, the handlers built from the global
//! config deep-merged with the rule's config. Snapshots are immutable and swapped atomically;
//! requests load the current one without locking. Building a snapshot checks that every handler
//! is enabled and configured, so a misconfigured rule is rejected at load, not per request.

pub mod authn;
pub mod authz;
pub mod client_credentials;
pub mod error;
pub mod error_handlers;
pub mod hydrator;
pub mod id_token;
pub mod introspection;
pub mod jwt;
pub mod mutate;
pub mod remote_authz;
pub mod session;
pub mod session_check;

use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_rules::handlers::{HandlerKind, check_merged_config, merge_config};
use portcullis_rules::{Handler, MatchError, Rule, RuleError, RuleSet};
use serde_json::Value;

use crate::config::GatewayConfig;
use crate::metrics::{Metrics, RuleCounters};
use authn::{Authenticator, AuthnError};
use authz::Authorizer;
use error::{ErrorResponse, PipelineError, json_response};
use error_handlers::ErrorHandlerEntry;
use mutate::Mutator;
use session::{AuthenticationSession, RequestInfo};

/// Where rules come from; the serving set is the union of both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `access_rules.repositories`.
    Files,
    /// The operator's `rules` stream.
    Stream,
}

/// The latest rules of each source, with their origin (file name or stream version).
#[derive(Default)]
struct Sources {
    files: Vec<(String, Rule)>,
    stream: Vec<(String, Rule)>,
}

/// A rule's handlers, built once per snapshot.
pub struct PreparedRule {
    authenticators: Vec<Arc<dyn Authenticator>>,
    authorizer: Arc<dyn Authorizer>,
    mutators: Vec<Arc<dyn Mutator>>,
    errors: Arc<[ErrorHandlerEntry]>,
    needs_body: bool,
    /// Some handler may read `MatchContext.RegexpCaptureGroups` (templates, hydrator): only
    /// then are capture groups extracted from the URL.
    needs_captures: bool,
    /// `noop` authenticator first, `allow`, only `noop` mutators: the outcome is known without
    /// running the handlers (the pass-through fast path, no boxed futures).
    pass_through: bool,
    upstream: Option<Arc<crate::upstream::UpstreamBase>>,
    /// The rule's request counters.
    counters: Arc<RuleCounters>,
}

/// The rule a request matched, before its handlers ran.
pub struct Matched {
    snapshot: Arc<Snapshot>,
    found: portcullis_rules::Found,
    url: String,
}

impl Matched {
    /// Whether the rule's handlers read the request body (the `remote` authorizer).
    pub fn needs_body(&self) -> bool {
        self.snapshot
            .prepared
            .get(self.found.index)
            .is_some_and(|p| p.needs_body)
    }

    /// Whether the rule is `noop → allow → noop`-like: its decision reads nothing of the request
    /// but the URL it matched (no headers, no body).
    pub fn is_pass_through(&self) -> bool {
        self.snapshot
            .prepared
            .get(self.found.index)
            .is_some_and(|p| p.pass_through)
    }

    /// The matched rule.
    pub fn rule(&self) -> &Arc<Rule> {
        &self.found.rule
    }
}

/// The rule a URL matched ([`Pipeline::find`]), before anything was copied from the request.
/// It borrows the serving rule set (an `arc-swap` guard, no reference count taken): use it
/// right away, as the proxy's lookup does, and turn it into a [`Matched`] to keep it.
pub struct FoundRule {
    snapshot: arc_swap::Guard<Arc<Snapshot>>,
    found: portcullis_rules::Found,
}

impl FoundRule {
    /// For a pass-through rule (`noop`, `allow`, `noop` mutators, no capture groups read) with
    /// an upstream: the rule and its upstream, all the proxy needs to send the request on
    /// without building a [`RequestInfo`] or running [`Pipeline::run`].
    pub fn pass_through(&self) -> Option<PassThrough<'_>> {
        let prepared = self.snapshot.prepared.get(self.found.index)?;
        if !prepared.pass_through || prepared.needs_captures {
            return None;
        }
        Some(PassThrough {
            rule: &self.found.rule,
            upstream: prepared.upstream.as_ref()?,
            counters: &prepared.counters,
        })
    }

    /// The match, for [`Pipeline::run`], with the URL it was found for.
    pub fn into_matched(self, url: String) -> Matched {
        Matched {
            snapshot: arc_swap::Guard::into_inner(self.snapshot),
            found: self.found,
            url,
        }
    }
}

/// What the proxy needs of a pass-through rule ([`FoundRule::pass_through`]).
pub struct PassThrough<'a> {
    /// The rule.
    pub rule: &'a Arc<Rule>,
    /// Its parsed upstream.
    pub upstream: &'a Arc<crate::upstream::UpstreamBase>,
    /// Its request counters.
    pub counters: &'a Arc<RuleCounters>,
}

/// An immutable compiled rule set with its prepared handlers.
pub struct Snapshot {
    /// The compiled rules.
    pub rules: RuleSet,
    prepared: Vec<PreparedRule>,
}

/// A request that passed the pipeline.
#[derive(Debug)]
pub struct Decision {
    /// The matched rule.
    pub rule: Arc<Rule>,
    /// The final session (its `header` goes upstream / into the `/decisions` answer).
    pub session: AuthenticationSession,
    /// A `noop` mutator ran: `/decisions` echoes the request headers.
    pub echo_request_headers: bool,
    /// The rule's error handlers (for failures after the decision, e.g. no upstream).
    pub rule_errors: Arc<[ErrorHandlerEntry]>,
    /// The rule's parsed upstream (`None` for decision-only rules).
    pub upstream: Option<Arc<crate::upstream::UpstreamBase>>,
    /// The rule's request counters.
    pub counters: Arc<RuleCounters>,
}

/// A request the pipeline refused, with the rule if one matched.
#[derive(Debug)]
pub struct Refusal {
    /// The matched rule, if any.
    pub rule: Option<Arc<Rule>>,
    /// The matched rule's error handlers.
    pub rule_errors: Option<Arc<[ErrorHandlerEntry]>>,
    /// Why.
    pub error: PipelineError,
}

/// What handlers need from the gateway: the HTTP client, the JWKS cache, the metrics.
#[derive(Clone)]
pub struct Deps {
    /// Client for session checks, remote authorizers, JWKS.
    pub client: reqwest::Client,
    /// Shared JWKS cache.
    pub jwks: Arc<crate::jwks::JwksCache>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// The pipeline and its current snapshot.
pub struct Pipeline {
    config: Arc<GatewayConfig>,
    deps: Deps,
    snapshot: ArcSwap<Snapshot>,
    fallback: Vec<Result<ErrorHandlerEntry, String>>,
    sources: std::sync::Mutex<Sources>,
    loaded: std::sync::atomic::AtomicBool,
    /// The operator's stream delivered a snapshot (possibly empty: a cluster with no Rules yet).
    stream_received: std::sync::atomic::AtomicBool,
    /// URL repositories without a first good load, with their last error: not ready meanwhile.
    awaited: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// The proxy port is not accepting connections yet (set by the server until it does).
    proxy_pending: std::sync::atomic::AtomicBool,
}

impl Pipeline {
    /// A pipeline with an empty (not ready) snapshot.
    pub fn new(config: Arc<GatewayConfig>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        let empty = Snapshot {
            rules: RuleSet::compile(Vec::new(), config.matching_strategy).unwrap_or_default(),
            prepared: Vec::new(),
        };
        let fallback = config
            .error_fallback
            .iter()
            .map(|name| {
                let settings = config.handler(HandlerKind::ErrorHandler, name);
                if !settings.enabled {
                    return Err(format!(
                        "error handler {name:?} is disabled per configuration"
                    ));
                }
                ErrorHandlerEntry::build(name, &settings.config)
            })
            .collect();
        Ok(Self {
            fallback,
            sources: std::sync::Mutex::new(Sources::default()),
            config,
            deps: Deps {
                jwks: Arc::new(crate::jwks::JwksCache::new(client.clone())),
                client,
                metrics: Arc::new(Metrics::default()),
            },
            snapshot: ArcSwap::from_pointee(empty),
            loaded: std::sync::atomic::AtomicBool::new(false),
            stream_received: std::sync::atomic::AtomicBool::new(false),
            awaited: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            proxy_pending: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Problems with `errors.fallback` (a disabled or misconfigured handler), for start-up.
    pub fn fallback_problems(&self) -> Vec<String> {
        self.fallback
            .iter()
            .filter_map(|h| h.as_ref().err().map(|e| format!("errors.fallback: {e}")))
            .collect()
    }

    /// The gateway configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Compiles `rules` into a snapshot without installing it. Patterns the current snapshot
    /// already compiled are reused, so a new version that changes a few of 1 000 rules costs
    /// those few compilations, not 1 000.
    pub fn prepare(&self, rules: Vec<Rule>) -> Result<Snapshot, RuleError> {
        let current = self.snapshot();
        let rules =
            RuleSet::compile_reusing(rules, self.config.matching_strategy, Some(&current.rules))?;
        let prepared = rules
            .rules()
            .iter()
            .map(|rule| self.prepare_rule(rule))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot { rules, prepared })
    }

    /// Replaces the rules of one source (rule files or the operator stream) and installs the
    /// union of all sources. On error nothing changes and the error names the rule's origin.
    pub fn install_source(
        &self,
        source: Source,
        rules: Vec<(String, Rule)>,
    ) -> Result<usize, (String, RuleError)> {
        let mut sources = self.sources.lock().map_err(|_| {
            (
                "rules".to_owned(),
                RuleError {
                    rule_id: String::new(),
                    field: String::new(),
                    message: "rule sources lock poisoned".to_owned(),
                },
            )
        })?;
        let (files, stream) = match source {
            Source::Files => (&rules, &sources.stream),
            Source::Stream => (&sources.files, &rules),
        };
        let all: Vec<(String, Rule)> = files.iter().chain(stream.iter()).cloned().collect();
        let origins: Vec<(String, String)> = all
            .iter()
            .map(|(origin, r)| (r.id.clone(), origin.clone()))
            .collect();
        let snapshot = self
            .prepare(all.into_iter().map(|(_, r)| r).collect())
            .map_err(|error| {
                let origin = origins
                    .iter()
                    .find(|(id, _)| *id == error.rule_id)
                    .map(|(_, o)| o.clone())
                    .unwrap_or_else(|| "rules".to_owned());
                (origin, error)
            })?;
        let count = snapshot.rules.len();
        match source {
            Source::Files => sources.files = rules,
            Source::Stream => sources.stream = rules,
        }
        self.install(snapshot);
        if source == Source::Stream {
            self.stream_received
                .store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(count)
    }

    /// Atomically replaces the current snapshot.
    pub fn install(&self, snapshot: Snapshot) {
        self.deps.metrics.rules_installed(snapshot.rules.len());
        self.snapshot.store(Arc::new(snapshot));
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// JWKS locations of every `id_token` mutator (global config and rules).
    pub fn id_token_jwks_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        let global = self.config.handler(HandlerKind::Mutator, "id_token");
        if let Some(url) = global.config.get("jwks_url").and_then(Value::as_str) {
            urls.push(url.to_owned());
        }
        let snapshot = self.snapshot.load();
        for prepared in &snapshot.prepared {
            for m in &prepared.mutators {
                if let Some(url) = m.jwks_url()
                    && !urls.iter().any(|u| u == url)
                {
                    urls.push(url.to_owned());
                }
            }
        }
        urls
    }

    /// The shared JWKS cache.
    pub fn jwks(&self) -> &crate::jwks::JwksCache {
        &self.deps.jwks
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.deps.metrics
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// An access-rule repository (named as in logs) has not loaded yet; `why` is its last error.
    /// The gateway is not ready until [`Pipeline::repository_loaded`] names it.
    pub fn await_repository(&self, name: &str, why: &str) {
        if let Ok(mut awaited) = self.awaited.lock() {
            awaited.insert(name.to_owned(), why.to_owned());
        }
    }

    /// Not ready until [`Pipeline::proxy_accepting`]: the proxy port is bound by Pingora after
    /// the API port, and a ready gateway whose proxy port refuses connections would get traffic
    /// it cannot take.
    pub fn await_proxy(&self) {
        self.proxy_pending
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The proxy port accepted a connection.
    pub fn proxy_accepting(&self) {
        self.proxy_pending
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// A repository awaited with [`Pipeline::await_repository`] had its first good load.
    pub fn repository_loaded(&self, name: &str) {
        if let Ok(mut awaited) = self.awaited.lock() {
            awaited.remove(name);
        }
    }

    /// Why the gateway is not ready (`None` when it is), for `/health/ready`.
    pub fn not_ready_reason(&self) -> Option<String> {
        if let Ok(awaited) = self.awaited.lock()
            && let Some((name, why)) = awaited.iter().next()
        {
            return Some(format!(
                "access rule repository {name} has not been loaded: {why}"
            ));
        }
        if self
            .proxy_pending
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Some("the proxy port does not accept connections yet".to_owned());
        }
        (!self.is_ready()).then(|| "no access rules are loaded".to_owned())
    }

    /// Ready once a non-empty rule set is installed (as Oathkeeper's `rules_loaded` check), or
    /// once the operator's stream has delivered its snapshot, even an empty one: in a fresh
    /// cluster with no Rules yet the gateway must still become Ready (it answers 404 to
    /// everything), or `helm install --wait` could never finish. Never while an `http(s)://`
    /// repository has not loaded once: its rules would be missing.
    pub fn is_ready(&self) -> bool {
        self.awaited.lock().is_ok_and(|a| a.is_empty())
            && !self
                .proxy_pending
                .load(std::sync::atomic::Ordering::Acquire)
            && self.loaded.load(std::sync::atomic::Ordering::Acquire)
            && (!self.snapshot.load().rules.is_empty()
                || self
                    .stream_received
                    .load(std::sync::atomic::Ordering::Acquire))
    }

    fn merged(
        &self,
        kind: HandlerKind,
        rule_id: &str,
        field: &str,
        handler: &Handler,
    ) -> Result<Value, RuleError> {
        let err = |message: String| RuleError {
            rule_id: rule_id.to_owned(),
            field: field.to_owned(),
            message,
        };
        let global = self.config.handler(kind, &handler.handler);
        if !global.enabled {
            return Err(err(format!(
                "{} {:?} is disabled per configuration ({}.{}.enabled)",
                kind.section().trim_end_matches('s'),
                handler.handler,
                if kind == HandlerKind::ErrorHandler {
                    "errors.handlers"
                } else {
                    kind.section()
                },
                handler.handler
            )));
        }
        let merged = merge_config(&global.config, handler.config.as_ref());
        check_merged_config(kind, &handler.handler, &merged).map_err(err)?;
        Ok(merged)
    }

    fn prepare_rule(&self, rule: &Rule) -> Result<PreparedRule, RuleError> {
        let id = rule.id.as_str();
        let err = |field: String, message: String| RuleError {
            rule_id: id.to_owned(),
            field,
            message,
        };
        let mut authenticators = Vec::new();
        for (i, h) in rule.authenticators.iter().enumerate() {
            let field = format!("authenticators[{i}]");
            let config = self.merged(HandlerKind::Authenticator, id, &field, h)?;
            authenticators
                .push(authn::build(&h.handler, &config, &self.deps).map_err(|m| err(field, m))?);
        }
        let config = self.merged(HandlerKind::Authorizer, id, "authorizer", &rule.authorizer)?;
        let authorizer = authz::build(&rule.authorizer.handler, &config, &self.deps)
            .map_err(|m| err("authorizer".into(), m))?;
        let mut mutators = Vec::new();
        for (i, h) in rule.mutators.iter().enumerate() {
            let field = format!("mutators[{i}]");
            let config = self.merged(HandlerKind::Mutator, id, &field, h)?;
            mutators
                .push(mutate::build(&h.handler, &config, &self.deps).map_err(|m| err(field, m))?);
        }
        let mut errors = Vec::new();
        for (i, h) in rule.errors.iter().enumerate() {
            let field = format!("errors[{i}]");
            let config = self.merged(HandlerKind::ErrorHandler, id, &field, h)?;
            errors.push(ErrorHandlerEntry::build(&h.handler, &config).map_err(|m| err(field, m))?);
        }
        let upstream = if rule.upstream.url.is_empty() {
            None
        } else {
            Some(Arc::new(
                crate::upstream::UpstreamBase::parse(&rule.upstream.url)
                    .map_err(|m| err("upstream.url".into(), m))?,
            ))
        };
        Ok(PreparedRule {
            upstream,
            counters: self.deps.metrics.counters(id),
            needs_body: rule.authorizer.handler == "remote",
            needs_captures: needs_captures(rule),
            pass_through: rule
                .authenticators
                .first()
                .is_some_and(|h| h.handler == "noop")
                && rule.authorizer.handler == "allow"
                && rule.mutators.iter().all(|h| h.handler == "noop"),
            authenticators,
            authorizer,
            mutators,
            errors: errors.into(),
        })
    }

    /// Runs the pipeline for `req` against the current snapshot.
    pub async fn decide(&self, req: &RequestInfo) -> Result<Decision, Refusal> {
        let matched = self.match_request(req)?;
        self.run(matched, req).await
    }

    /// Finds the one rule for `req` (first half of [`Pipeline::decide`]).
    pub fn match_request(&self, req: &RequestInfo) -> Result<Matched, Refusal> {
        let url = req.match_url();
        Ok(self.find(&req.method, &url)?.into_matched(url))
    }

    /// [`Pipeline::match_request`] on a borrowed match URL (`scheme://host/clean-path`).
    pub fn find(&self, method: &str, url: &str) -> Result<FoundRule, Refusal> {
        let snapshot = self.snapshot.load();
        let found = snapshot.rules.find_rule(method, url).map_err(|e| {
            let error = match &e {
                MatchError::NotFound => PipelineError::not_found(e.to_string()),
                MatchError::Multiple(ids) => {
                    tracing::warn!(rules = ?ids, "several rules match the request");
                    PipelineError::internal(e.to_string())
                }
                MatchError::Eval { .. } => PipelineError::internal(e.to_string()),
            };
            Refusal {
                rule: None,
                rule_errors: None,
                error,
            }
        })?;
        Ok(FoundRule { snapshot, found })
    }

    /// Runs the matched rule's handlers (second half of [`Pipeline::decide`]).
    pub async fn run(&self, matched: Matched, req: &RequestInfo) -> Result<Decision, Refusal> {
        let Matched {
            snapshot,
            found,
            url,
        } = matched;
        let rule = found.rule;
        let Some(prepared) = snapshot.prepared.get(found.index) else {
            return Err(Refusal {
                rule: Some(rule),
                rule_errors: None,
                error: PipelineError::internal("rule has no prepared handlers"),
            });
        };
        let refuse = |rule: &Arc<Rule>, error: PipelineError| Refusal {
            rule: Some(Arc::clone(rule)),
            rule_errors: Some(Arc::clone(&prepared.errors)),
            error,
        };
        let capture_groups = if prepared.needs_captures {
            snapshot
                .rules
                .capture_groups(found.index, &url)
                .map_err(|e| refuse(&rule, PipelineError::internal(e.to_string())))?
        } else {
            Vec::new()
        };
        let mut session = AuthenticationSession {
            capture_groups,
            ..Default::default()
        };
        if prepared.pass_through {
            // What the handlers would do: `noop` authenticates with an empty subject, `allow`
            // allows, `noop` mutators change nothing (and make `/decisions` echo the headers).
            return Ok(Decision {
                rule,
                session,
                echo_request_headers: !prepared.mutators.is_empty(),
                rule_errors: Arc::clone(&prepared.errors),
                upstream: prepared.upstream.clone(),
                counters: Arc::clone(&prepared.counters),
            });
        }
        let mut authenticated = false;
        for authenticator in &prepared.authenticators {
            match authenticator.authenticate(req, &mut session).await {
                Ok(()) => {
                    authenticated = true;
                    break;
                }
                Err(AuthnError::NotResponsible) => continue,
                Err(AuthnError::Failed(e)) => return Err(refuse(&rule, e)),
            }
        }
        if !authenticated {
            return Err(refuse(
                &rule,
                PipelineError::unauthorized("no authenticator is responsible for the request"),
            ));
        }
        prepared
            .authorizer
            .authorize(req, &mut session)
            .await
            .map_err(|e| refuse(&rule, e))?;
        let mut echo_request_headers = false;
        for mutator in &prepared.mutators {
            mutator
                .mutate(req, &mut session)
                .await
                .map_err(|e| refuse(&rule, e))?;
            echo_request_headers |= mutator.is_noop();
        }
        Ok(Decision {
            rule,
            session,
            echo_request_headers,
            rule_errors: Arc::clone(&prepared.errors),
            upstream: prepared.upstream.clone(),
            counters: Arc::clone(&prepared.counters),
        })
    }

    /// The error handlers' response for a refusal: the rule's `errors` whose `when` matches
    /// (two matching is a 500), else the first matching handler of `errors.fallback`.
    pub fn error_response(&self, refusal: &Refusal, req: &RequestInfo) -> ErrorResponse {
        let error = &refusal.error;
        if let Some(rule_errors) = &refusal.rule_errors {
            let mut matching = rule_errors.iter().filter(|h| h.matches(error, req));
            match (matching.next(), matching.next()) {
                (Some(handler), None) => return handler.respond(error, req),
                (Some(_), Some(_)) => {
                    return json_response(
                        &PipelineError::internal(
                            "Found more than one error handlers to be responsible",
                        ),
                        false,
                    );
                }
                _ => {}
            }
        }
        for handler in self.fallback.iter() {
            match handler {
                Ok(h) if h.matches(error, req) => return h.respond(error, req),
                Ok(_) => {}
                Err(message) => {
                    return json_response(&PipelineError::internal(message.clone()), false);
                }
            }
        }
        json_response(
            &PipelineError::internal("no matching error handling strategy"),
            false,
        )
    }
}

/// Whether a rule's handlers may read the regexp capture groups: every handler except the ones
/// known not to use templates or the match context.
fn needs_captures(rule: &Rule) -> bool {
    const BLIND: &[&str] = &["noop", "allow", "deny", "anonymous", "unauthorized"];
    !(rule
        .authenticators
        .iter()
        .chain(std::iter::once(&rule.authorizer))
        .chain(rule.mutators.iter())
        .all(|h| BLIND.contains(&h.handler.as_str())))
}
