//! Mutators: what the upstream (or the `/decisions` caller) gets to know about the session.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_rules::handlers::{CookieMutatorConfig, HeaderMutatorConfig};
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

    /// The signing key source (JWKS or PEM) of an `id_token` mutator (published at `/.well-known/jwks.json`).
    fn jwks_url(&self) -> Option<&str> {
        None
    }
}

/// Builds a mutator from its merged config.
pub fn build(name: &str, config: &Value, deps: &super::Deps) -> Result<Arc<dyn Mutator>, String> {
    Ok(match name {
        "noop" => Arc::new(Noop),
        "id_token" => Arc::new(super::id_token::IdToken::new(config, deps)?),
        "hydrator" => Arc::new(super::hydrator::Hydrator::new(config, deps)?),
        "cookie" => {
            let c: CookieMutatorConfig =
                serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
            let cookies = c
                .cookies
                .into_iter()
                .map(|(name, source)| {
                    Ok((name, Template::parse(&source).map_err(|e| e.to_string())?))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Arc::new(Cookie { cookies })
        }
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

struct Cookie {
    cookies: Vec<(String, Template)>,
}

#[async_trait]
impl Mutator for Cookie {
    async fn mutate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        let data = session.template_data(req);
        let mut pairs = Vec::new();
        for (name, template) in &self.cookies {
            let value = template
                .render(&data)
                .map_err(|e| PipelineError::internal(e.to_string()))?;
            pairs.push(format!("{name}={value}"));
        }
        for (name, value) in req.cookie_names_values() {
            if !self.cookies.iter().any(|(n, _)| n == name) {
                pairs.push(format!("{name}={value}"));
            }
        }
        let header = pairs.join("; ");
        if http::HeaderValue::from_str(&header).is_err() {
            return Err(PipelineError::internal(
                "cookie rendered to an invalid value",
            ));
        }
        session.set_header("Cookie", header);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req() -> RequestInfo {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "cookie",
            http::HeaderValue::from_static("a=1; user=spoofed"),
        );
        RequestInfo {
            method: "GET".into(),
            scheme: "http".into(),
            host: "h".into(),
            path: "/".into(),
            query: None,
            headers,
            remote_addr: None,
            body: None,
        }
    }

    #[tokio::test]
    async fn header_and_cookie_mutators_render_templates() -> Result<(), Box<dyn std::error::Error>>
    {
        let client = reqwest::Client::new();
        let jwks = super::super::Deps {
            jwks: Arc::new(crate::jwks::JwksCache::new(client.clone())),
            client,
            metrics: Arc::default(),
        };
        let mut session = AuthenticationSession {
            subject: "u1".into(),
            ..Default::default()
        };
        build(
            "header",
            &json!({"headers": {"X-User-Id": "{{ print .Subject }}"}}),
            &jwks,
        )?
        .mutate(&req(), &mut session)
        .await?;
        build(
            "cookie",
            &json!({"cookies": {"user": "{{ .Subject }}"}}),
            &jwks,
        )?
        .mutate(&req(), &mut session)
        .await?;
        assert_eq!(
            session.header,
            vec![
                ("X-User-Id".to_owned(), "u1".to_owned()),
                ("Cookie".to_owned(), "user=u1; a=1".to_owned())
            ]
        );
        let bad = build(
            "header",
            &json!({"headers": {"X": "{{ .Subject }}\n"}}),
            &jwks,
        )?;
        assert!(bad.mutate(&req(), &mut session).await.is_err());
        Ok(())
    }
}
