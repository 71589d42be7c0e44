//! The Kubernetes API permissions the operator needs, as one table. `operator/rbac.yaml` (the
//! chart's ClusterRole rules) is checked against it by a test, and the mocked-API tests check
//! that every request the code makes is covered by it.

/// One RBAC rule: API group, resources, verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Resources (with `/status` for the subresource).
    pub resources: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
}

/// Every permission the operator uses, and no more.
pub const PERMISSIONS: &[Permission] = &[
    // Reflectors: list + watch; `get` for the controller's object lookups.
    Permission {
        group: "portcullis.dev",
        resources: &["rules", "identityschemas"],
        verbs: &["get", "list", "watch"],
    },
    // Status via server-side apply.
    Permission {
        group: "portcullis.dev",
        resources: &["rules/status", "identityschemas/status"],
        verbs: &["patch"],
    },
    // Accept/reject Events (kube's Recorder creates, then patches a series).
    Permission {
        group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create", "patch"],
    },
    // Leader election.
    Permission {
        group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["get", "create", "update"],
    },
    // --oathkeeper-compat only: watch Maester's Rules, write their `status.validation`
    // (Maester's CRD has no status subresource, so that is a patch of the object).
    Permission {
        group: "oathkeeper.ory.sh",
        resources: &["rules"],
        verbs: &["get", "list", "watch", "patch"],
    },
];

/// Whether `PERMISSIONS` allows `verb` on `group`/`resource`.
pub fn allows(group: &str, resource: &str, verb: &str) -> bool {
    PERMISSIONS
        .iter()
        .any(|p| p.group == group && p.resources.contains(&resource) && p.verbs.contains(&verb))
}
