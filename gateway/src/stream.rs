//! Rules from the operator's config stream (`PORTCULLIS_STREAM_URL`, `PORTCULLIS_STREAM_TOKEN`,
//! optional `PORTCULLIS_STREAM_CACHE`): each snapshot's items are Oathkeeper rule JSON and
//! replace the stream's share of the serving rule set (rule files, if any, stay). A snapshot
//! the gateway cannot serve is refused and the previous one stays in force.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use portcullis_rules::Rule;
use portcullis_stream::{ApplyError, StreamToken, Subscriber, SubscriberConfig, TOPIC_RULES};

use crate::pipeline::{Pipeline, Source};

/// Stream settings from the environment.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    config: SubscriberConfig,
}

impl StreamSettings {
    /// Reads `PORTCULLIS_STREAM_URL` (the operator base URL or its full `/v1/streams/rules`
    /// URL), `PORTCULLIS_STREAM_TOKEN` and `PORTCULLIS_STREAM_CACHE`; `Ok(None)` when no URL.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let Some(raw) = get("PORTCULLIS_STREAM_URL").filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let base = match raw.find("/v1/streams/") {
            Some(i) => raw[..i].to_owned(),
            None => raw.clone(),
        };
        let base = format!("{}/", base.trim_end_matches('/'));
        let base = url::Url::parse(&base).map_err(|e| format!("PORTCULLIS_STREAM_URL: {e}"))?;
        let token = get("PORTCULLIS_STREAM_TOKEN")
            .and_then(StreamToken::new)
            .ok_or("PORTCULLIS_STREAM_TOKEN must be set when PORTCULLIS_STREAM_URL is")?;
        let mut config = SubscriberConfig::new(base, TOPIC_RULES, token);
        if let Some(cache) = get("PORTCULLIS_STREAM_CACHE").filter(|c| !c.is_empty()) {
            config = config.with_cache_path(cache);
        }
        Ok(Some(Self { config }))
    }
}

/// Background service following the stream until shutdown.
pub struct StreamService {
    settings: StreamSettings,
    pipeline: Arc<Pipeline>,
}

impl StreamService {
    /// A service applying snapshots to `pipeline`.
    pub fn new(settings: StreamSettings, pipeline: Arc<Pipeline>) -> Self {
        Self { settings, pipeline }
    }
}

#[async_trait]
impl BackgroundService for StreamService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let pipeline = Arc::clone(&self.pipeline);
        let subscriber = Subscriber::start(self.settings.config.clone(), move |snapshot| {
            let origin = format!("operator stream (version {})", snapshot.version);
            let rules = snapshot
                .items
                .iter()
                .map(|item| {
                    serde_json::from_value::<Rule>(item.clone())
                        .map(|rule| (origin.clone(), rule))
                        .map_err(|e| ApplyError(format!("{origin}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            match pipeline.install_source(Source::Stream, rules) {
                Ok(count) => {
                    tracing::info!(
                        rules = count,
                        version = snapshot.version,
                        "access rules from the operator applied"
                    );
                    Ok(())
                }
                Err((origin, error)) => {
                    pipeline.metrics().rules_rejected();
                    Err(ApplyError(format!("{origin}: {error}")))
                }
            }
        });
        let _ = shutdown.changed().await;
        drop(subscriber);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_accept_the_full_stream_url_and_need_a_token() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(StreamSettings::from_env(env(&[])).ok().flatten().is_none());
        let s = StreamSettings::from_env(env(&[
            (
                "PORTCULLIS_STREAM_URL",
                "http://op.ns.svc:4470/v1/streams/rules",
            ),
            ("PORTCULLIS_STREAM_TOKEN", "t"),
        ]));
        let base = s.ok().flatten().map(|s| s.config.base_url.to_string());
        assert_eq!(base.as_deref(), Some("http://op.ns.svc:4470/"));
        assert!(
            StreamSettings::from_env(env(&[("PORTCULLIS_STREAM_URL", "http://op:4470")])).is_err()
        );
    }
}
