//! Wiring of one operator process: HTTP port, lease, and the controllers, until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::runtime::controller::{Controller, Error as ControllerError};
use kube::runtime::watcher;
use portcullis_crds::{IdentitySchema, Rule};
use portcullis_rules::MatchingStrategy;
use portcullis_stream::{Publisher, StreamToken};
use tokio::sync::watch;

use crate::context::Context;
use crate::evaluation::RuleEvaluator;
use crate::leader::{self, Leadership, LeaseConfig};
use crate::metrics::Metrics;
use crate::rule_controller::{self, OATHKEEPER_GROUP};
use crate::schema_controller;

/// How long a stopping operator tries to give its lease up.
const LEASE_RELEASE_PATIENCE: Duration = Duration::from_secs(3);

/// Everything `run` needs (built from the CLI).
#[derive(Debug)]
pub struct OperatorConfig {
    /// HTTP listen address (port 4470).
    pub listen: SocketAddr,
    /// Watched namespaces; empty = all.
    pub namespaces: Vec<String>,
    /// Also serve `rules.oathkeeper.ory.sh`.
    pub oathkeeper_compat: bool,
    /// Gateways' matching strategy.
    pub strategy: MatchingStrategy,
    /// Lease namespace.
    pub lease_namespace: String,
    /// Lease name.
    pub lease_name: String,
    /// Lease validity.
    pub lease_duration: Duration,
    /// Identity in the lease.
    pub identity: String,
    /// Stream bearer token.
    pub token: StreamToken,
}

/// Why the operator could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable kubeconfig / in-cluster config.
    #[error("cannot connect to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The HTTP port could not be bound or served.
    #[error("HTTP port {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn apis<K>(client: &Client, namespaces: &[String]) -> Vec<Api<K>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    }
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Runs the operator until `shutdown` resolves.
pub async fn run(
    config: OperatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let client = Client::try_default().await?;
    let publisher = Publisher::new();
    let metrics = Arc::new(Metrics::new());
    let leadership = Leadership::new(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    // HTTP first, so liveness answers while the caches sync.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| RunError::Http {
            addr: config.listen,
            source,
        })?;
    tracing::info!(addr = %config.listen, "serving /healthz, /readyz, /metrics and /v1/streams");
    let app = crate::http::router(publisher.clone(), metrics.clone(), config.token.clone());
    let http_stop = stop_rx.clone();
    let http_publisher = publisher.clone();
    let http = tokio::spawn(async move {
        let graceful = async move {
            wait_true(http_stop).await;
            // Close streams so subscribers fail over to another replica at once.
            http_publisher.close_streams();
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
    });

    let lease = LeaseConfig {
        namespace: config.lease_namespace.clone(),
        name: config.lease_name.clone(),
        identity: config.identity.clone(),
        duration: config.lease_duration,
    };
    let lease_task = tokio::spawn(leader::run(
        client.clone(),
        lease.clone(),
        leadership.clone(),
        metrics.clone(),
    ));

    let wc = watcher::Config::default().any_semantic();
    let rule_controllers: Vec<Controller<Rule>> = apis::<Rule>(&client, &config.namespaces)
        .into_iter()
        .map(|api| Controller::new(api, wc.clone()).reconcile_all_on(leadership.gained()))
        .collect();
    let schema_controllers: Vec<Controller<IdentitySchema>> =
        apis::<IdentitySchema>(&client, &config.namespaces)
            .into_iter()
            .map(|api| Controller::new(api, wc.clone()).reconcile_all_on(leadership.gained()))
            .collect();
    let mut oathkeeper_controllers = Vec::new();
    if config.oathkeeper_compat {
        let gvk = GroupVersionKind::gvk(OATHKEEPER_GROUP, "v1alpha1", "Rule");
        match kube::discovery::pinned_kind(&client, &gvk).await {
            Ok((resource, _)) => {
                let apis: Vec<Api<DynamicObject>> = if config.namespaces.is_empty() {
                    vec![Api::all_with(client.clone(), &resource)]
                } else {
                    config
                        .namespaces
                        .iter()
                        .map(|ns| Api::namespaced_with(client.clone(), ns, &resource))
                        .collect()
                };
                for api in apis {
                    oathkeeper_controllers.push(Controller::new_with(
                        api,
                        wc.clone(),
                        resource.clone(),
                    ));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "--oathkeeper-compat: rules.oathkeeper.ory.sh is not installed; serving portcullis.dev Rules only")
            }
        }
    }

    let mut ctx = Context::new(
        client.clone(),
        RuleEvaluator::new(config.strategy),
        publisher.clone(),
        metrics.clone(),
        leadership.clone(),
    );
    ctx.rules = rule_controllers.iter().map(Controller::store).collect();
    ctx.schemas = schema_controllers.iter().map(Controller::store).collect();
    ctx.oathkeeper_rules = oathkeeper_controllers
        .iter()
        .map(Controller::store)
        .collect();
    let ctx = Arc::new(ctx);

    let mut runs = Vec::new();
    for controller in rule_controllers {
        let ctx2 = ctx.clone();
        runs.push(
            controller
                .graceful_shutdown_on(wait_true(stop_rx.clone()))
                .run(
                    rule_controller::reconcile,
                    rule_controller::error_policy,
                    ctx.clone(),
                )
                .for_each(move |result| {
                    republish_on_delete(result.err(), ctx2.clone(), Topic::Rules)
                })
                .boxed(),
        );
    }
    for controller in oathkeeper_controllers {
        let ctx2 = ctx.clone();
        runs.push(
            controller
                .graceful_shutdown_on(wait_true(stop_rx.clone()))
                .run(
                    rule_controller::reconcile_oathkeeper,
                    rule_controller::error_policy_oathkeeper,
                    ctx.clone(),
                )
                .for_each(move |result| {
                    republish_on_delete(result.err(), ctx2.clone(), Topic::Rules)
                })
                .boxed(),
        );
    }
    for controller in schema_controllers {
        let ctx2 = ctx.clone();
        runs.push(
            controller
                .graceful_shutdown_on(wait_true(stop_rx.clone()))
                .run(
                    schema_controller::reconcile,
                    schema_controller::error_policy,
                    ctx.clone(),
                )
                .for_each(move |result| {
                    republish_on_delete(result.err(), ctx2.clone(), Topic::Schemas)
                })
                .boxed(),
        );
    }
    futures::future::join_all(runs).await;
    lease_task.abort();
    if leadership.is_leader() {
        leadership.set(false);
        metrics.set_leader(false);
        let leases: Api<Lease> = Api::namespaced(client.clone(), &lease.namespace);
        match tokio::time::timeout(LEASE_RELEASE_PATIENCE, leader::release(&leases, &lease)).await {
            Ok(Ok(released)) => tracing::info!(released, lease = %lease.name, "lease given up"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release the lease; it expires on its own")
            }
            Err(_) => tracing::warn!("releasing the lease timed out; it expires on its own"),
        }
    }
    let served = http.await;
    tracing::info!("operator stopped");
    match served {
        Ok(Ok(())) | Err(_) => Ok(()),
        Ok(Err(source)) => Err(RunError::Http {
            addr: config.listen,
            source,
        }),
    }
}

#[derive(Clone, Copy)]
enum Topic {
    Rules,
    Schemas,
}

/// A deleted object is never reconciled (it is gone from the cache); its disappearance
/// surfaces as `ObjectNotFound`, on which the topic is re-published without it.
async fn republish_on_delete<E, Q>(
    error: Option<ControllerError<E, Q>>,
    ctx: Arc<Context>,
    topic: Topic,
) where
    E: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    match error {
        Some(ControllerError::ObjectNotFound(obj)) => {
            tracing::debug!(object = %obj, "object deleted; re-publishing");
            let result = match topic {
                Topic::Rules => rule_controller::publish_rules(&ctx).await.map(|_| ()),
                Topic::Schemas => schema_controller::publish_schemas(&ctx).await.map(|_| ()),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "re-publish after delete failed");
            }
        }
        Some(ControllerError::ReconcilerFailed(..)) | None => {}
        Some(e) => tracing::warn!(error = %e, "controller error"),
    }
}
