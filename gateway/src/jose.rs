//! JSON Web Keys and compact JWS tokens (verify and sign), on `ring`.
//!
//! Used by the `jwt` authenticator (verification) and the `id_token` mutator (signing). The
//! `rsa` crate is not used (RUSTSEC-2023-0071): every signature goes through `ring`.
//! Supported algorithms: RS256/384/512, PS256/384/512, ES256, ES384.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a token or key cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// Not three base64url parts with a JSON header and payload.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// The algorithm is unknown or not allowed.
    #[error("signing algorithm {0:?} is not allowed")]
    Algorithm(String),
    /// The key cannot be used (wrong type, bad parameters).
    #[error("key is not usable: {0}")]
    Key(String),
    /// The signature does not verify.
    #[error("token signature is invalid")]
    Signature,
}

/// One JSON Web Key (public or private).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA` or `EC`.
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `sig` or `enc`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// EC curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Private exponent / scalar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    /// RSA prime p.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    /// RSA prime q.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// RSA d mod (p-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<String>,
    /// RSA d mod (q-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dq: Option<String>,
    /// RSA q^-1 mod p.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qi: Option<String>,
    /// The private key as DER when it was loaded from a PEM file ([`crate::pem_key`]); never
    /// serialized, redacted in `Debug`.
    #[serde(skip)]
    pub(crate) private_der: Option<PrivateDer>,
}

/// A private key in a DER form `ring` loads directly.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PrivateDer {
    /// PKCS#8 EC key (also SEC1 keys, wrapped into PKCS#8).
    EcPkcs8(Vec<u8>),
    /// PKCS#8 RSA key.
    RsaPkcs8(Vec<u8>),
    /// PKCS#1 `RSAPrivateKey`.
    RsaPkcs1(Vec<u8>),
}

impl std::fmt::Debug for PrivateDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateDer(<redacted>)")
    }
}

/// A JWK set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// Whether this is a private key.
    pub fn is_private(&self) -> bool {
        self.d.is_some() || self.private_der.is_some()
    }

    /// The public part (private parameters removed); `None` for symmetric keys.
    pub fn public(&self) -> Option<Jwk> {
        if self.kty != "RSA" && self.kty != "EC" {
            return None;
        }
        Some(Jwk {
            d: None,
            p: None,
            q: None,
            dp: None,
            dq: None,
            qi: None,
            private_der: None,
            ..self.clone()
        })
    }

    /// Usable for signatures (`use` absent or `sig`).
    pub fn is_signing_key(&self) -> bool {
        self.use_.as_deref().is_none_or(|u| u == "sig")
    }
}

impl JwkSet {
    /// The signing key with this id.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid) && k.is_signing_key())
    }
}

fn b64(field: &Option<String>, name: &str) -> Result<Vec<u8>, JoseError> {
    let text = field
        .as_deref()
        .ok_or_else(|| JoseError::Key(format!("missing {name}")))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| JoseError::Key(format!("{name} is not base64url")))
}

/// A decoded (not yet verified) token.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The JOSE header.
    pub header: Value,
    /// The claims.
    pub claims: Value,
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl Decoded<'_> {
    /// `alg` from the header.
    pub fn alg(&self) -> &str {
        self.header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `kid` from the header.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// Verifies the signature with `key`.
    pub fn verify(&self, key: &Jwk) -> Result<(), JoseError> {
        verify(
            self.alg(),
            key,
            self.signing_input.as_bytes(),
            &self.signature,
        )
    }
}

/// Splits and decodes a compact JWS.
pub fn decode(token: &str) -> Result<Decoded<'_>, JoseError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed("expected three parts"));
    };
    let json = |part: &str| -> Result<Value, JoseError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JoseError::Malformed("not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| JoseError::Malformed("not JSON"))
    };
    let header = json(h)?;
    let claims = json(p)?;
    if !claims.is_object() {
        return Err(JoseError::Malformed("claims are not an object"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JoseError::Malformed("signature is not base64url"))?;
    Ok(Decoded {
        header,
        claims,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature,
    })
}

fn verify(alg: &str, key: &Jwk, message: &[u8], sig: &[u8]) -> Result<(), JoseError> {
    if key.alg.as_deref().is_some_and(|a| a != alg) {
        return Err(JoseError::Algorithm(alg.to_owned()));
    }
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
            if key.kty != "RSA" {
                return Err(JoseError::Key("not an RSA key".to_owned()));
            }
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            let public = signature::RsaPublicKeyComponents {
                n: b64(&key.n, "n")?,
                e: b64(&key.e, "e")?,
            };
            public
                .verify(params, message, sig)
                .map_err(|_| JoseError::Signature)
        }
        "ES256" | "ES384" => {
            let (crv, params): (&str, &signature::EcdsaVerificationAlgorithm) = if alg == "ES256" {
                ("P-256", &signature::ECDSA_P256_SHA256_FIXED)
            } else {
                ("P-384", &signature::ECDSA_P384_SHA384_FIXED)
            };
            if key.kty != "EC" || key.crv.as_deref() != Some(crv) {
                return Err(JoseError::Key(format!("not an EC {crv} key")));
            }
            let point = ec_point(key)?;
            signature::UnparsedPublicKey::new(params, point)
                .verify(message, sig)
                .map_err(|_| JoseError::Signature)
        }
        other => Err(JoseError::Algorithm(other.to_owned())),
    }
}

fn ec_point(key: &Jwk) -> Result<Vec<u8>, JoseError> {
    let mut point = vec![4u8];
    point.extend(b64(&key.x, "x")?);
    point.extend(b64(&key.y, "y")?);
    Ok(point)
}

/// A private key ready to sign.
pub struct Signer {
    alg: String,
    kid: Option<String>,
    key: SignerKey,
}

enum SignerKey {
    Rsa(signature::RsaKeyPair),
    Ec(signature::EcdsaKeyPair),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish()
    }
}

impl Signer {
    /// Builds a signer from a private JWK; the algorithm is the key's `alg` (RSA default RS256,
    /// EC P-256 default ES256).
    pub fn from_jwk(key: &Jwk) -> Result<Self, JoseError> {
        let rng = ring::rand::SystemRandom::new();
        if let Some(der) = &key.private_der {
            return Self::from_der(key, der, &rng);
        }
        match key.kty.as_str() {
            "RSA" => {
                let alg = key.alg.clone().unwrap_or_else(|| "RS256".to_owned());
                if !matches!(
                    alg.as_str(),
                    "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512"
                ) {
                    return Err(JoseError::Algorithm(alg));
                }
                let components = ring::rsa::KeyPairComponents {
                    public_key: ring::rsa::PublicKeyComponents {
                        n: b64(&key.n, "n")?,
                        e: b64(&key.e, "e")?,
                    },
                    d: b64(&key.d, "d")?,
                    p: b64(&key.p, "p")?,
                    q: b64(&key.q, "q")?,
                    dP: b64(&key.dp, "dp")?,
                    dQ: b64(&key.dq, "dq")?,
                    qInv: b64(&key.qi, "qi")?,
                };
                let pair = signature::RsaKeyPair::from_components(&components)
                    .map_err(|e| JoseError::Key(e.to_string()))?;
                Ok(Self {
                    alg,
                    kid: key.kid.clone(),
                    key: SignerKey::Rsa(pair),
                })
            }
            "EC" => {
                let (alg, params): (&str, &'static signature::EcdsaSigningAlgorithm) = match key
                    .crv
                    .as_deref()
                {
                    Some("P-256") => ("ES256", &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
                    Some("P-384") => ("ES384", &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
                    other => return Err(JoseError::Key(format!("unsupported curve {other:?}"))),
                };
                let pair = signature::EcdsaKeyPair::from_private_key_and_public_key(
                    params,
                    &b64(&key.d, "d")?,
                    &ec_point(key)?,
                    &rng,
                )
                .map_err(|e| JoseError::Key(e.to_string()))?;
                Ok(Self {
                    alg: alg.to_owned(),
                    kid: key.kid.clone(),
                    key: SignerKey::Ec(pair),
                })
            }
            other => Err(JoseError::Key(format!("unsupported key type {other:?}"))),
        }
    }

    /// A signer for a key loaded from PEM: `ring` reads the DER itself.
    fn from_der(
        key: &Jwk,
        der: &PrivateDer,
        rng: &ring::rand::SystemRandom,
    ) -> Result<Self, JoseError> {
        let rejected = |e: ring::error::KeyRejected| JoseError::Key(e.to_string());
        let (alg, key_pair) = match der {
            PrivateDer::EcPkcs8(der) => {
                let (alg, params): (&str, &'static signature::EcdsaSigningAlgorithm) =
                    match key.crv.as_deref() {
                        Some("P-384") => ("ES384", &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
                        _ => ("ES256", &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
                    };
                let pair =
                    signature::EcdsaKeyPair::from_pkcs8(params, der, rng).map_err(rejected)?;
                (alg, SignerKey::Ec(pair))
            }
            PrivateDer::RsaPkcs8(der) => (
                "RS256",
                SignerKey::Rsa(signature::RsaKeyPair::from_pkcs8(der).map_err(rejected)?),
            ),
            PrivateDer::RsaPkcs1(der) => (
                "RS256",
                SignerKey::Rsa(signature::RsaKeyPair::from_der(der).map_err(rejected)?),
            ),
        };
        Ok(Self {
            alg: key.alg.clone().unwrap_or_else(|| alg.to_owned()),
            kid: key.kid.clone(),
            key: key_pair,
        })
    }

    /// The algorithm this signer uses.
    pub fn alg(&self) -> &str {
        &self.alg
    }

    /// Signs `claims` into a compact JWS with `kid` in the header.
    pub fn sign(&self, claims: &Value) -> Result<String, JoseError> {
        let mut header = serde_json::json!({"alg": self.alg, "typ": "JWT"});
        if let Some(kid) = &self.kid {
            header["kid"] = Value::String(kid.clone());
        }
        let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default());
        let input = format!("{}.{}", encode(&header), encode(claims));
        let rng = ring::rand::SystemRandom::new();
        let signature = match &self.key {
            SignerKey::Rsa(pair) => {
                let padding: &dyn signature::RsaEncoding = match self.alg.as_str() {
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, input.as_bytes(), &mut sig)
                    .map_err(|_| JoseError::Key("RSA signing failed".to_owned()))?;
                sig
            }
            SignerKey::Ec(pair) => pair
                .sign(&rng, input.as_bytes())
                .map_err(|_| JoseError::Key("ECDSA signing failed".to_owned()))?
                .as_ref()
                .to_vec(),
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// A new EC P-256 private JWK (for tests and `credentials generate`-style tooling).
pub fn generate_es256(kid: &str) -> Result<Jwk, JoseError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| JoseError::Key("key generation failed".to_owned()))?;
    let pair = signature::EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .map_err(|e| JoseError::Key(e.to_string()))?;
    let public = pair.public_key().as_ref();
    // PKCS#8 for P-256 from ring: the 32-byte private scalar follows the `04 20` OCTET STRING tag.
    let der = pkcs8.as_ref();
    let d = der
        .windows(2)
        .position(|w| w == [0x04, 0x20])
        .and_then(|i| der.get(i + 2..i + 34))
        .ok_or_else(|| JoseError::Key("unexpected PKCS#8 layout".to_owned()))?;
    Ok(Jwk {
        kty: "EC".to_owned(),
        kid: Some(kid.to_owned()),
        use_: Some("sig".to_owned()),
        alg: Some("ES256".to_owned()),
        crv: Some("P-256".to_owned()),
        x: Some(URL_SAFE_NO_PAD.encode(&public[1..33])),
        y: Some(URL_SAFE_NO_PAD.encode(&public[33..65])),
        d: Some(URL_SAFE_NO_PAD.encode(d)),
        ..Jwk::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn es256_sign_verify_roundtrip_and_tamper() -> Result<(), JoseError> {
        let key = generate_es256("k1")?;
        let signer = Signer::from_jwk(&key)?;
        let token = signer.sign(&json!({"sub": "u1"}))?;
        let decoded = decode(&token)?;
        assert_eq!(decoded.alg(), "ES256");
        assert_eq!(decoded.kid(), Some("k1"));
        let public = key.public().ok_or(JoseError::Key("no public".into()))?;
        assert!(!public.is_private());
        decoded.verify(&public)?;
        let other = generate_es256("k2")?;
        assert_eq!(decoded.verify(&other), Err(JoseError::Signature));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
        parts[1] = &forged;
        let forged = parts.join(".");
        assert_eq!(decode(&forged)?.verify(&public), Err(JoseError::Signature));
        Ok(())
    }

    #[test]
    fn rs256_sign_verify_roundtrip() -> Result<(), Box<dyn std::error::Error>> {
        let set: JwkSet =
            serde_json::from_str(include_str!("../tests/fixtures/rsa-private.jwks.json"))?;
        let key = set.find("test-rsa-1").ok_or("no key")?;
        let signer = Signer::from_jwk(key)?;
        assert_eq!(signer.alg(), "RS256");
        let token = signer.sign(&json!({"sub": "u1"}))?;
        let public = key.public().ok_or("no public")?;
        decode(&token)?.verify(&public)?;
        let es = generate_es256("k")?;
        assert!(decode(&token)?.verify(&es).is_err());
        Ok(())
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for token in ["", "a.b", "a.b.c.d", "!!.e30.x", "e30.bm90anNvbg.x"] {
            assert!(decode(token).is_err(), "{token}");
        }
    }

    #[test]
    fn algorithm_must_fit_the_key() -> Result<(), JoseError> {
        let key = generate_es256("k1")?;
        let token = Signer::from_jwk(&key)?.sign(&json!({}))?;
        let mut rsa_shaped = key.clone();
        rsa_shaped.kty = "RSA".into();
        assert!(decode(&token)?.verify(&rsa_shaped).is_err());
        Ok(())
    }
}
