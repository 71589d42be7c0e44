//! The bearer token that authenticates stream subscribers: never printed, compared in
//! constant time.

use std::fmt;

use subtle::ConstantTimeEq;

/// A shared secret (from the `PORTCULLIS_STREAM_TOKEN` Secret). `Debug` never shows the value.
#[derive(Clone)]
pub struct StreamToken(String);

impl StreamToken {
    /// Wraps a token; `None` when it is empty (an empty token would authenticate anyone).
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        if value.trim().is_empty() {
            None
        } else {
            Some(Self(value))
        }
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`, in constant time
    /// with respect to the token's content.
    pub fn matches_authorization(&self, header: Option<&str>) -> bool {
        let Some(presented) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        bool::from(presented.trim().as_bytes().ct_eq(self.0.as_bytes()))
    }

    /// The `Authorization` header value for requests carrying this token.
    pub(crate) fn authorization(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for StreamToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_token_is_refused() {
        assert!(StreamToken::new("").is_none());
        assert!(StreamToken::new("  ").is_none());
    }

    #[test]
    fn only_the_exact_bearer_token_matches() -> Result<(), &'static str> {
        let token = StreamToken::new("s3cret").ok_or("token")?;
        assert!(token.matches_authorization(Some("Bearer s3cret")));
        assert!(!token.matches_authorization(Some("Bearer s3cre")));
        assert!(!token.matches_authorization(Some("Bearer s3cret2")));
        assert!(!token.matches_authorization(Some("Basic s3cret")));
        assert!(!token.matches_authorization(Some("s3cret")));
        assert!(!token.matches_authorization(None));
        Ok(())
    }

    #[test]
    fn debug_hides_the_value() -> Result<(), &'static str> {
        let token = StreamToken::new("s3cret").ok_or("token")?;
        assert!(!format!("{token:?}").contains("s3cret"));
        Ok(())
    }
}
