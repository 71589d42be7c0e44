//! Status written back to the objects: `metav1.Condition`s that keep their
//! `lastTransitionTime` while unchanged, applied with server-side apply under one field
//! manager so the operator owns exactly the status fields it writes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "portcullis-operator";
/// Condition type: the object is valid and not in conflict.
pub const ACCEPTED: &str = "Accepted";
/// Condition type: the object is in the snapshot served to subscribers.
pub const READY: &str = "Ready";

/// The desired state of one condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    /// `Accepted` or `Ready`.
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// Builds the conditions to write: `lastTransitionTime` is kept from `previous` when the
/// status of that type did not change, and set to `now` otherwise.
pub fn conditions(
    desired: &[DesiredCondition],
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == d.type_ && p.status == status)
                .map_or(Time(now), |p| p.last_transition_time.clone());
            Condition {
                type_: d.type_.to_owned(),
                status: status.to_owned(),
                reason: d.reason.clone(),
                message: truncate(&d.message, 32 * 1024),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Whether the `type_` condition flipped (or appeared) between `previous` and `next`.
pub fn transitioned(type_: &str, previous: &[Condition], next: &[Condition]) -> bool {
    let status = |list: &[Condition]| {
        list.iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.clone())
    };
    status(previous) != status(next)
}

/// Applies `status` to the object's `/status` subresource with server-side apply.
pub async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&patch))
        .await?;
    Ok(())
}

fn truncate(message: &str, limit: usize) -> String {
    if message.len() <= limit {
        return message.to_owned();
    }
    let mut end = limit;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(status: bool, reason: &str) -> DesiredCondition {
        DesiredCondition {
            type_: ACCEPTED,
            status,
            reason: reason.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged() -> Result<(), k8s_openapi::jiff::Error> {
        let t1: Timestamp = "2026-01-01T00:00:00Z".parse()?;
        let t2: Timestamp = "2026-01-02T00:00:00Z".parse()?;
        let first = conditions(&[accepted(true, "Valid")], &[], Some(1), t1);
        let same = conditions(&[accepted(true, "Valid")], &first, Some(2), t2);
        assert_eq!(same[0].last_transition_time, Time(t1));
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = conditions(&[accepted(false, "InvalidPattern")], &same, Some(3), t2);
        assert_eq!(flipped[0].last_transition_time, Time(t2));
        assert!(transitioned(ACCEPTED, &same, &flipped));
        assert!(!transitioned(ACCEPTED, &first, &same));
        Ok(())
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(40_000);
        let cut = truncate(&long, 32 * 1024);
        assert!(cut.len() <= 32 * 1024 + "…".len());
    }
}
