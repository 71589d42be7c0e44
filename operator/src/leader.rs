//! Lease-based leader election (`coordination.k8s.io/v1` Lease). Only the holder writes status
//! and Events; every replica keeps serving the stream. Losing the lease or failing to renew it
//! stops status writes at once (fail closed: two writers are worse than a late status).

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Whether this replica currently holds the lease. Cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    tx: Arc<watch::Sender<bool>>,
}

impl Leadership {
    /// Starts as `leader` (tests and single-replica setups may start as leader).
    pub fn new(leader: bool) -> Self {
        let (tx, _) = watch::channel(leader);
        Self { tx: Arc::new(tx) }
    }

    /// Whether status writes are allowed now.
    pub fn is_leader(&self) -> bool {
        *self.tx.borrow()
    }

    /// Records whether this replica holds the lease.
    pub fn set(&self, leader: bool) {
        self.tx.send_if_modified(|current| {
            let changed = *current != leader;
            *current = leader;
            changed
        });
    }

    /// Yields once each time this replica becomes leader (to re-reconcile every object).
    pub fn gained(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.tx.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            loop {
                rx.changed().await.ok()?;
                if *rx.borrow_and_update() {
                    return Some(((), rx));
                }
            }
        })
    }
}

/// Where the lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the release namespace).
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
}

/// Acquires and renews the lease forever, updating `leadership`.
pub async fn run(
    client: Client,
    config: LeaseConfig,
    leadership: Leadership,
    metrics: Arc<Metrics>,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let renew_every = config.duration / 3;
    loop {
        let leader = match try_acquire(&api, &config).await {
            Ok(leader) => leader,
            Err(e) => {
                tracing::warn!(error = %e, lease = %config.name, "lease check failed; not writing status");
                false
            }
        };
        if leader != leadership.is_leader() {
            tracing::info!(leader, identity = %config.identity, "leadership changed");
        }
        leadership.set(leader);
        metrics.set_leader(leader);
        tokio::time::sleep(renew_every).await;
    }
}

/// One acquire-or-renew round. `Ok(true)` when we hold the lease afterwards.
pub async fn try_acquire(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let seconds = i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX);
    let existing = api.get_opt(&config.name).await?;
    let Some(mut lease) = existing else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let expired = spec.renew_time.as_ref().is_none_or(|renewed| {
        let valid_for =
            SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(seconds)));
        renewed.0 + valid_for < now
    });
    if holder != config.identity && !holder.is_empty() && !expired {
        return Ok(false);
    }
    if holder != config.identity {
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(seconds);
    // `replace` carries the resourceVersion we read: a concurrent writer makes this a 409.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up if this replica holds it (on shutdown), so that another replica takes
/// over status writes at its next renewal instead of after the lease expires. `Ok(true)` when a
/// held lease was released; a concurrent change (409) or another holder leaves it alone.
pub async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        return Ok(false);
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(false);
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
