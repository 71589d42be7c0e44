//! Authorizers: may this subject do this request.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::error::PipelineError;
use super::session::{AuthenticationSession, RequestInfo};

/// One authorizer stage.
#[async_trait]
pub trait Authorizer: Send + Sync {
    /// Allows (`Ok`) or denies the request.
    async fn authorize(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError>;
}

/// Builds an authorizer from its merged config.
pub fn build(
    name: &str,
    config: &Value,
    deps: &super::Deps,
) -> Result<Arc<dyn Authorizer>, String> {
    Ok(match name {
        "allow" => Arc::new(Allow),
        "deny" => Arc::new(Deny),
        "remote" | "remote_json" => Arc::new(super::remote_authz::RemoteAuthorizer::new(
            name == "remote_json",
            config,
            deps.client.clone(),
        )?),
        other => {
            return Err(format!(
                "authorizer {other:?} is not supported by this gateway yet"
            ));
        }
    })
}

struct Allow;

#[async_trait]
impl Authorizer for Allow {
    async fn authorize(
        &self,
        _: &RequestInfo,
        _: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        Ok(())
    }
}

struct Deny;

#[async_trait]
impl Authorizer for Deny {
    async fn authorize(
        &self,
        _: &RequestInfo,
        _: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        Err(PipelineError::forbidden(
            "Access credentials are not sufficient to access this resource",
        ))
    }
}
