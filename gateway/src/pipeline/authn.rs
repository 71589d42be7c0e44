//! Authenticators: who is making the request.
//!
//! Oathkeeper's chain semantics: each authenticator either is not responsible (the next one is
//! tried), succeeds (the chain stops) or fails (the chain stops with that error; there is no
//! fall-through on invalid credentials). If none is responsible the request is a 401.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_rules::handlers::AnonymousConfig;
use serde_json::Value;

use super::error::PipelineError;
use super::session::{AuthenticationSession, RequestInfo};
use super::session_check::SessionCheck;

/// Outcome of one authenticator that did not succeed.
#[derive(Debug)]
pub enum AuthnError {
    /// The request carries nothing this authenticator handles.
    NotResponsible,
    /// The credentials are invalid or could not be checked.
    Failed(PipelineError),
}

/// One authenticator stage.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// Authenticates `req`, filling `session` on success.
    async fn authenticate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), AuthnError>;
}

/// Builds an authenticator from its merged config.
pub fn build(
    name: &str,
    config: &Value,
    deps: &super::Deps,
) -> Result<Arc<dyn Authenticator>, String> {
    Ok(match name {
        "noop" => Arc::new(Noop),
        "unauthorized" => Arc::new(Unauthorized),
        "anonymous" => {
            let c: AnonymousConfig =
                serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
            Arc::new(Anonymous {
                subject: c.subject.unwrap_or_else(|| "anonymous".to_owned()),
            })
        }
        "cookie_session" | "bearer_token" => {
            Arc::new(SessionCheck::new(name == "bearer_token", config, deps)?)
        }
        "jwt" => Arc::new(super::jwt::Jwt::new(config, deps)?),
        "oauth2_client_credentials" => Arc::new(super::client_credentials::ClientCredentials::new(
            config, deps,
        )?),
        "oauth2_introspection" => Arc::new(super::introspection::Introspection::new(config, deps)?),
        other => {
            return Err(format!(
                "authenticator {other:?} is not supported by this gateway yet"
            ));
        }
    })
}

struct Noop;

#[async_trait]
impl Authenticator for Noop {
    async fn authenticate(
        &self,
        _: &RequestInfo,
        _: &mut AuthenticationSession,
    ) -> Result<(), AuthnError> {
        Ok(())
    }
}

struct Unauthorized;

#[async_trait]
impl Authenticator for Unauthorized {
    async fn authenticate(
        &self,
        _: &RequestInfo,
        _: &mut AuthenticationSession,
    ) -> Result<(), AuthnError> {
        Err(AuthnError::Failed(PipelineError::unauthorized(
            "Access credentials are invalid",
        )))
    }
}

struct Anonymous {
    subject: String,
}

#[async_trait]
impl Authenticator for Anonymous {
    async fn authenticate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), AuthnError> {
        if req.header("authorization").is_some_and(|v| !v.is_empty()) {
            return Err(AuthnError::NotResponsible);
        }
        session.subject = self.subject.clone();
        Ok(())
    }
}
