//! Kubernetes custom resource types (Rule, IdentitySchema). Types only, no I/O.
//!
//! The operator watches these objects, validates them and streams the valid ones to gateways
//! (`Rule`) and identity replicas (`IdentitySchema`). The YAML manifests are generated from
//! these types by the `crdgen` binary.

mod conversion;
mod identity_schema;
mod rule;
mod schema;
mod yaml;

pub use conversion::{DEFAULT_AUTHENTICATOR, DEFAULT_AUTHORIZER, DEFAULT_MUTATOR};
pub use identity_schema::{IdentitySchema, IdentitySchemaSpec, IdentitySchemaStatus};
pub use rule::{HTTP_METHODS, Handler, Rule, RuleMatch, RuleSpec, RuleStatus, Upstream};
pub use yaml::{RenderError, rendered_crds};

/// API group of every Portcullis CRD.
pub const GROUP: &str = "portcullis.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
