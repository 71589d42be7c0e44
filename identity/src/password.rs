//! Passwords: argon2id PHC hashing with configured parameters (in a blocking task behind a
//! semaphore, so memory × concurrency stays bounded), verification, and the password policy
//! (minimum length, similarity to the identifier).

use std::str::FromStr as _;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::{Argon2Config, PasswordPolicy};
use crate::text::Message;

/// A password as submitted; never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Why hashing failed (never because of the password's content).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed")]
    Task,
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    salt_length: usize,
    permits: Arc<Semaphore>,
    /// A hash of a random password at the current cost, verified against when the identifier is
    /// unknown so that unknown users take as long as wrong passwords.
    decoy: Arc<String>,
}

impl Hasher {
    pub fn new(config: &Argon2Config) -> Result<Self, HashError> {
        let memory = config
            .memory_kib()
            .ok_or_else(|| HashError::Params("memory".to_owned()))?;
        let params = Params::new(
            memory,
            config.iterations,
            config.parallelism.max(1),
            Some(config.key_length as usize),
        )
        .map_err(|e| HashError::Params(e.to_string()))?;
        let permits = config.concurrency.map(|c| c as usize).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2)
        });
        let salt_length = (config.salt_length as usize).clamp(8, 48);
        let decoy_password = uuid::Uuid::new_v4().to_string();
        let decoy = hash_sync(&params, salt_length, decoy_password.as_bytes())?;
        Ok(Self {
            params,
            salt_length,
            permits: Arc::new(Semaphore::new(permits.max(1))),
            decoy: Arc::new(decoy),
        })
    }

    /// Hashes a password into an argon2id PHC string.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Task)?;
        let params = self.params.clone();
        let salt_length = self.salt_length;
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            hash_sync(&params, salt_length, password.expose().as_bytes())
        })
        .await
        .map_err(|_| HashError::Task)?
    }

    /// Verifies a password against a stored PHC hash; `None` verifies against the decoy and
    /// always fails, taking the same time.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = stored.is_some();
        let hash = stored.unwrap_or(self.decoy.as_str()).to_owned();
        let password = password.clone();
        let matched = tokio::task::spawn_blocking(move || verify_sync(&hash, password.expose()))
            .await
            .unwrap_or(false);
        known && matched
    }
}

fn hash_sync(params: &Params, salt_length: usize, password: &[u8]) -> Result<String, HashError> {
    let mut salt_bytes = vec![0u8; salt_length];
    rand::fill(&mut salt_bytes[..]);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

fn verify_sync(stored: &str, password: &str) -> bool {
    if is_bcrypt(stored) {
        return bcrypt_cost(stored).is_some_and(|c| c <= MAX_BCRYPT_COST)
            && bcrypt::verify(password, stored).unwrap_or(false);
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    if check_phc_bounds(&parsed).is_err() {
        return false;
    }
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        "pbkdf2-sha256" | "pbkdf2-sha512" | "pbkdf2-sha1" | "pbkdf2" => pbkdf2::Pbkdf2
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        _ => false,
    }
}

const MAX_BCRYPT_COST: u32 = 15;

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

fn bcrypt_cost(stored: &str) -> Option<u32> {
    stored.get(4..6)?.parse().ok()
}

fn param(parsed: &PasswordHash<'_>, name: &str) -> Option<u64> {
    parsed
        .params
        .iter()
        .find(|(k, _)| k.as_str() == name)
        .and_then(|(_, v)| v.decimal().ok())
        .map(u64::from)
}

/// Kratos' import bounds, so an imported hash cannot make verification hang.
fn check_phc_bounds(parsed: &PasswordHash<'_>) -> Result<(), String> {
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {
            if param(parsed, "m").unwrap_or(0) > 1024 * 1024
                || param(parsed, "t").unwrap_or(0) > 10
                || param(parsed, "p").unwrap_or(0) > 16
            {
                return Err("argon2 parameters are out of bounds (m ≤ 1GiB, t ≤ 10, p ≤ 16); please re-hash".to_owned());
            }
            Ok(())
        }
        "pbkdf2-sha256" | "pbkdf2-sha512" | "pbkdf2-sha1" | "pbkdf2" => {
            if param(parsed, "i").unwrap_or(0) > 10_000_000 {
                return Err(
                    "pbkdf2 iterations are out of bounds (i ≤ 10^7); please re-hash".to_owned(),
                );
            }
            Ok(())
        }
        _ => Err("The imported password does not match any known hash format.".to_owned()),
    }
}

/// Checks an imported `hashed_password` (bcrypt, argon2 or pbkdf2 PHC strings).
pub fn validate_import(stored: &str) -> Result<(), String> {
    if is_bcrypt(stored) {
        return match bcrypt_cost(stored) {
            Some(cost)
                if cost <= MAX_BCRYPT_COST && bcrypt::HashParts::from_str(stored).is_ok() =>
            {
                Ok(())
            }
            Some(_) => Err("bcrypt cost is out of bounds (≤ 15); please re-hash".to_owned()),
            None => Err("The imported password does not match any known hash format.".to_owned()),
        };
    }
    let parsed = PasswordHash::new(stored)
        .map_err(|_| "The imported password does not match any known hash format.".to_owned())?;
    check_phc_bounds(&parsed)
}

impl Hasher {
    /// Whether a stored hash should be replaced by one with the current algorithm/parameters.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return true;
        };
        if parsed.algorithm.as_str() != "argon2id" {
            return true;
        }
        let output_len = parsed.hash.map(|h| h.len()).unwrap_or(0);
        param(&parsed, "m") != Some(u64::from(self.params.m_cost()))
            || param(&parsed, "t") != Some(u64::from(self.params.t_cost()))
            || param(&parsed, "p") != Some(u64::from(self.params.p_cost()))
            || Some(output_len) != self.params.output_len()
    }
}

/// Checks a new password against the policy; returns the message for the `password` node.
pub fn check_policy(
    policy: &PasswordPolicy,
    password: &Password,
    identifiers: &[String],
) -> Option<Message> {
    let length = password.expose().chars().count();
    if length < policy.min_password_length {
        return Some(Message::password_too_short(
            policy.min_password_length,
            length,
        ));
    }
    if policy.identifier_similarity_check_enabled {
        let candidate = password.expose().to_lowercase();
        for identifier in identifiers {
            if too_similar(&candidate, &identifier.to_lowercase()) {
                return Some(Message::password_too_similar());
            }
        }
    }
    None
}

/// Equal, containing one another, or sharing a substring longer than half the password.
fn too_similar(password: &str, identifier: &str) -> bool {
    if identifier.is_empty() {
        return false;
    }
    if password.contains(identifier) || identifier.contains(password) {
        return true;
    }
    let local_part = identifier.split('@').next().unwrap_or(identifier);
    if local_part.chars().count() >= 4 && password.contains(local_part) {
        return true;
    }
    let p: Vec<char> = password.chars().collect();
    let i: Vec<char> = identifier.chars().collect();
    if p.len() > 256 || i.len() > 256 {
        return false;
    }
    longest_common_substring(&p, &i) * 2 > p.len()
}

fn longest_common_substring(a: &[char], b: &[char]) -> usize {
    let mut best = 0;
    let mut previous = vec![0usize; b.len() + 1];
    for ca in a {
        let mut current = vec![0usize; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            if ca == cb {
                current[j + 1] = previous[j] + 1;
                best = best.max(current[j + 1]);
            }
        }
        previous = current;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Config {
        Argon2Config {
            memory: serde_json::json!("1MB"),
            ..Argon2Config::default()
        }
    }

    #[tokio::test]
    async fn hash_then_verify_roundtrip() {
        let hasher = Hasher::new(&cheap()).unwrap();
        let pw = Password::new("correct horse battery".to_owned());
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(hasher.verify(&pw, Some(&hash)).await);
        assert!(
            !hasher
                .verify(&Password::new("wrong".to_owned()), Some(&hash))
                .await
        );
        assert!(!hasher.verify(&pw, None).await);
    }

    #[tokio::test]
    async fn imported_hashes_verify_and_ask_for_rehash() {
        let hasher = Hasher::new(&cheap()).unwrap();
        let pw = Password::new("imported password".to_owned());
        let bcrypt_hash = bcrypt::hash(pw.expose(), 4).unwrap();
        assert!(validate_import(&bcrypt_hash).is_ok());
        assert!(hasher.verify(&pw, Some(&bcrypt_hash)).await);
        assert!(hasher.needs_rehash(&bcrypt_hash));
        let pbkdf2_hash = {
            use argon2::password_hash::PasswordHasher as _;
            let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
            let params = pbkdf2::Params {
                rounds: 1000,
                output_length: 32,
            };
            pbkdf2::Pbkdf2
                .hash_password_customized(pw.expose().as_bytes(), None, None, params, &salt)
                .unwrap()
                .to_string()
        };
        assert!(pbkdf2_hash.starts_with("$pbkdf2-sha256$"));
        assert!(validate_import(&pbkdf2_hash).is_ok());
        assert!(hasher.verify(&pw, Some(&pbkdf2_hash)).await);
        let own = hasher.hash(&pw).await.unwrap();
        assert!(!hasher.needs_rehash(&own));
        let stronger = Hasher::new(&Argon2Config {
            memory: serde_json::json!("2MB"),
            ..Argon2Config::default()
        })
        .unwrap();
        assert!(stronger.needs_rehash(&own));
        assert!(validate_import("plain-text").is_err());
        assert!(
            validate_import("$2a$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234")
                .is_err()
        );
    }

    #[test]
    fn policy_rejects_short_and_similar_passwords() {
        let policy = PasswordPolicy::default();
        let ids = vec!["alice@example.com".to_owned()];
        let short = check_policy(&policy, &Password::new("short".into()), &ids).unwrap();
        assert_eq!(short.id, 4000032);
        let same = check_policy(&policy, &Password::new("alice@example.com".into()), &ids);
        assert_eq!(same.unwrap().id, 4000031);
        let contains = check_policy(&policy, &Password::new("alice1234567".into()), &ids);
        assert_eq!(contains.unwrap().id, 4000031);
        assert!(check_policy(&policy, &Password::new("tr0ub4dor&3x!".into()), &ids).is_none());
    }
}
