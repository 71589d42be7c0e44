//! Mutators: what the upstream (or the `/decisions` caller) gets to know about the session.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_rules::handlers::HeaderMutatorConfig;
use portcullis_rules::template::Template;
use serde_json::Value;

use super::error::PipelineError;
use super::session::{AuthenticationSession, RequestInfo};

/// One mutator stage.
#[async_trait]
pub trait Mutator: Send + Sync {
    /// Changes the session (usually its headers).
    async fn mutate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError>;

    /// Whether this is `noop` (which echoes request headers from `/decisions`).
    fn is_noop(&self) -> bool {
        false
    }
}

/// Builds a mutator from its merged config.
pub fn build(name: &str, config: &Value) -> Result<Arc<dyn Mutator>, String> {
    Ok(match name {
        "noop" => Arc::new(Noop),
        "header" => {
            let c: HeaderMutatorConfig =
                serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
            let headers = c
                .headers
                .into_iter()
                .map(|(name, source)| {
                    http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("{name:?} is not a valid header name"))?;
                    Ok((name, Template::parse(&source).map_err(|e| e.to_string())?))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Arc::new(Header { headers })
        }
        other => {
            return Err(format!(
                "mutator {other:?} is not supported by this gateway yet"
            ));
        }
    })
}

struct Noop;

#[async_trait]
impl Mutator for Noop {
    async fn mutate(
        &self,
        _: &RequestInfo,
        _: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        Ok(())
    }

    fn is_noop(&self) -> bool {
        true
    }
}

struct Header {
    headers: Vec<(String, Template)>,
}

#[async_trait]
impl Mutator for Header {
    async fn mutate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        let data = session.template_data(req);
        for (name, template) in &self.headers {
            let value = template
                .render(&data)
                .map_err(|e| PipelineError::internal(e.to_string()))?;
            if http::HeaderValue::from_str(&value).is_err() {
                return Err(PipelineError::internal(format!(
                    "header {name:?} rendered to an invalid value"
                )));
            }
            session.set_header(name, value);
        }
        Ok(())
    }
}
