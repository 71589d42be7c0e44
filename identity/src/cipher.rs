//! Encryption at rest with `secrets.cipher` (env `SECRETS_CIPHER`): AES-256-GCM via ring, a
//! random 96-bit nonce per value, stored as base64url(nonce ‖ ciphertext ‖ tag). The first key
//! encrypts; every key is tried to decrypt, so keys rotate by prepending a new one.

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// The cipher could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("secrets.cipher is not configured (SECRETS_CIPHER)")]
    NoKey,
    #[error("the value could not be decrypted with any secrets.cipher key")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// The configured keys; empty when `secrets.cipher` is not set.
pub struct Cipher {
    keys: Vec<LessSafeKey>,
    rng: SystemRandom,
}

impl Cipher {
    /// Keys from `secrets.cipher` (each exactly 32 bytes, checked by the config).
    pub fn new(secrets: &[String]) -> Self {
        let keys = secrets
            .iter()
            .filter_map(|s| UnboundKey::new(&AES_256_GCM, s.as_bytes()).ok())
            .map(LessSafeKey::new)
            .collect();
        Self {
            keys,
            rng: SystemRandom::new(),
        }
    }

    pub fn is_configured(&self) -> bool {
        !self.keys.is_empty()
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, CipherError> {
        let key = self.keys.first().ok_or(CipherError::NoKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| CipherError::Encrypt)?;
        let mut sealed = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut sealed,
        )
        .map_err(|_| CipherError::Encrypt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    pub fn decrypt(&self, text: &str) -> Result<Vec<u8>, CipherError> {
        if self.keys.is_empty() {
            return Err(CipherError::NoKey);
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CipherError::Decrypt)?;
        if raw.len() < NONCE_LEN {
            return Err(CipherError::Decrypt);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        for key in &self.keys {
            let nonce =
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::Decrypt)?;
            let mut buffer = sealed.to_vec();
            if let Ok(plain) = key.open_in_place(nonce, Aad::empty(), &mut buffer) {
                return Ok(plain.to_vec());
            }
        }
        Err(CipherError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "0123456789abcdef0123456789abcdef";
    const NEW: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn round_trip_and_rotation() {
        let old = Cipher::new(&[OLD.to_owned()]);
        let sealed = old.encrypt(b"secret").unwrap();
        let rotated = Cipher::new(&[NEW.to_owned(), OLD.to_owned()]);
        assert_eq!(rotated.decrypt(&sealed).unwrap(), b"secret");
        let resealed = rotated.encrypt(b"secret").unwrap();
        assert!(old.decrypt(&resealed).is_err(), "the first key encrypts");
        assert_ne!(rotated.encrypt(b"secret").unwrap(), resealed, "fresh nonce");
    }

    #[test]
    fn tampering_and_missing_keys_fail_closed() {
        let cipher = Cipher::new(&[OLD.to_owned()]);
        let mut sealed = cipher.encrypt(b"secret").unwrap();
        sealed.replace_range(20..21, if &sealed[20..21] == "A" { "B" } else { "A" });
        assert!(cipher.decrypt(&sealed).is_err());
        assert!(Cipher::new(&[]).encrypt(b"x").is_err());
    }
}
