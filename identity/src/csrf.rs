//! CSRF protection for browser flows (double submit, as Kratos does): a random token in an
//! HttpOnly cookie `csrf_token_<sha256(base_url)>`, and a freshly masked copy of it in the
//! flow's `csrf_token` node. A submit must carry both and they must match (constant time).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const TOKEN_LEN: usize = 32;

/// The CSRF cookie's name for a public base URL.
pub fn cookie_name(public_base: &str) -> String {
    format!(
        "csrf_token_{}",
        hex::encode(Sha256::digest(public_base.as_bytes()))
    )
}

/// A new raw token (base64 of 32 random bytes), the cookie value.
pub fn generate() -> String {
    let mut bytes = [0u8; TOKEN_LEN];
    rand::fill(&mut bytes);
    STANDARD.encode(bytes)
}

/// Whether a cookie value is a well-formed token.
pub fn is_valid_token(raw: &str) -> bool {
    STANDARD
        .decode(raw)
        .is_ok_and(|bytes| bytes.len() == TOKEN_LEN)
}

/// Masks a raw token for a form: base64(pad ‖ token XOR pad), different on every render.
pub fn mask(raw: &str) -> String {
    let Ok(token) = STANDARD.decode(raw) else {
        return String::new();
    };
    let mut pad = vec![0u8; token.len()];
    rand::fill(&mut pad[..]);
    let mut out = pad.clone();
    out.extend(token.iter().zip(&pad).map(|(t, p)| t ^ p));
    STANDARD.encode(out)
}

fn unmask(masked: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(masked.trim()).ok()?;
    if bytes.len() != TOKEN_LEN * 2 {
        return None;
    }
    let (pad, xored) = bytes.split_at(TOKEN_LEN);
    Some(xored.iter().zip(pad).map(|(x, p)| x ^ p).collect())
}

/// Why a CSRF check failed (the `reject_reason` Kratos reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    NoCookie,
    NoToken,
    Mismatch,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoCookie => {
                "The HTTP Cookie Header was set but did not include the anti-CSRF cookie."
            }
            Self::NoToken => "The anti-CSRF token was not sent in the request body or header.",
            Self::Mismatch => "The HTTP Cookie Header and the anti-CSRF token do not match.",
        }
    }
}

/// Checks a submitted masked token against the cookie and the flow's own token.
pub fn verify(
    cookie: Option<&str>,
    submitted: Option<&str>,
    flow_token: &str,
) -> Result<(), Rejection> {
    let cookie = cookie.ok_or(Rejection::NoCookie)?;
    let submitted = submitted
        .filter(|s| !s.is_empty())
        .ok_or(Rejection::NoToken)?;
    let token = unmask(submitted).ok_or(Rejection::Mismatch)?;
    let cookie_bytes = STANDARD.decode(cookie).map_err(|_| Rejection::Mismatch)?;
    let flow_bytes = STANDARD
        .decode(flow_token)
        .map_err(|_| Rejection::Mismatch)?;
    let ok = token.ct_eq(&cookie_bytes).unwrap_u8() & token.ct_eq(&flow_bytes).unwrap_u8();
    if ok == 1 {
        Ok(())
    } else {
        Err(Rejection::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_token_verifies_against_its_cookie_only() {
        let raw = generate();
        let masked = mask(&raw);
        assert_ne!(mask(&raw), masked);
        assert_eq!(verify(Some(&raw), Some(&masked), &raw), Ok(()));
        let other = generate();
        assert_eq!(
            verify(Some(&other), Some(&masked), &raw),
            Err(Rejection::Mismatch)
        );
        assert_eq!(verify(None, Some(&masked), &raw), Err(Rejection::NoCookie));
        assert_eq!(verify(Some(&raw), None, &raw), Err(Rejection::NoToken));
        assert_eq!(
            verify(Some(&raw), Some("garbage"), &raw),
            Err(Rejection::Mismatch)
        );
    }
}
