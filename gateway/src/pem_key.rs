//! PEM private keys as `id_token` signing keys, on `ring` only.
//!
//! Helm's `genPrivateKey`, Terraform's `tls_private_key` and `openssl genpkey` write PEM, not
//! JWKS. Accepted forms (detected by the PEM label):
//!
//! | label | form | signer |
//! |---|---|---|
//! | `PRIVATE KEY` | PKCS#8 EC P-256 / P-384 or RSA | `EcdsaKeyPair::from_pkcs8` (ES256/ES384), `RsaKeyPair::from_pkcs8` (RS256) |
//! | `EC PRIVATE KEY` | SEC1 (RFC 5915) | wrapped into PKCS#8 here, then as above |
//! | `RSA PRIVATE KEY` | PKCS#1 | `RsaKeyPair::from_der` (RS256) |
//!
//! The key gets a stable `kid`: its RFC 7638 JWK thumbprint (SHA-256, base64url), so the
//! published `/.well-known/jwks.json` entry and the token header agree across restarts.
//! Errors describe the problem, never the key material.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, KeyPair};

use crate::jose::{Jwk, PrivateDer};

/// `id-ecPublicKey` (1.2.840.10045.2.1), DER-encoded with its tag and length.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `prime256v1` / P-256 (1.2.840.10045.3.1.7), DER-encoded.
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `secp384r1` / P-384 (1.3.132.0.34), DER-encoded.
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// Whether `bytes` look like PEM rather than JSON.
pub fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN ")
}

/// Parses the first PEM block of `text` into a private signing [`Jwk`] (public parameters,
/// `kid`, `alg`, `use: sig`; the private key is kept as DER for `ring`, never serialized).
pub fn private_key_from_pem(text: &[u8]) -> Result<Jwk, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the PEM file is not text".to_owned())?;
    let (label, der) = pem_block(text)?;
    let pem_error = |e: ring::error::KeyRejected| format!("{label} PEM is not a usable key ({e})");
    let rng = ring::rand::SystemRandom::new();
    match label {
        "PRIVATE KEY" => {
            for (crv, params) in [
                ("P-256", &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
                ("P-384", &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
            ] {
                if let Ok(pair) = signature::EcdsaKeyPair::from_pkcs8(params, &der, &rng) {
                    return Ok(ec_jwk(crv, pair.public_key().as_ref(), der));
                }
            }
            let pair = signature::RsaKeyPair::from_pkcs8(&der).map_err(|e| {
                format!("PRIVATE KEY PEM is neither a P-256/P-384 EC nor an RSA PKCS#8 key ({e})")
            })?;
            Ok(rsa_jwk(pair.public(), PrivateDer::RsaPkcs8(der)))
        }
        "EC PRIVATE KEY" => {
            let (crv, params, pkcs8) = sec1_to_pkcs8(&der)?;
            let pair =
                signature::EcdsaKeyPair::from_pkcs8(params, &pkcs8, &rng).map_err(pem_error)?;
            Ok(ec_jwk(crv, pair.public_key().as_ref(), pkcs8))
        }
        "RSA PRIVATE KEY" => {
            let pair = signature::RsaKeyPair::from_der(&der).map_err(pem_error)?;
            Ok(rsa_jwk(pair.public(), PrivateDer::RsaPkcs1(der)))
        }
        "ENCRYPTED PRIVATE KEY" => Err(
            "encrypted PEM keys are not supported; store the key unencrypted in a Secret".into(),
        ),
        other => Err(format!(
            "PEM block {other:?} is not a supported private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)"
        )),
    }
}

/// The label and decoded body of the first `-----BEGIN …-----` block.
fn pem_block(text: &str) -> Result<(&str, Vec<u8>), String> {
    let start = text
        .find("-----BEGIN ")
        .ok_or("no -----BEGIN line in the PEM file")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("malformed -----BEGIN line")?;
    let label = &rest[..label_end];
    let body_and_end = &rest[label_end + "-----".len()..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_and_end
        .find(&end_marker)
        .ok_or_else(|| format!("{label} PEM has no matching -----END line"))?;
    let body = &body_and_end[..body_end];
    // Legacy OpenSSL encryption puts `Proc-Type: 4,ENCRYPTED` headers into the block.
    if body.contains("Proc-Type:") || body.contains("DEK-Info:") {
        return Err(
            "encrypted PEM keys are not supported; store the key unencrypted in a Secret".into(),
        );
    }
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| format!("{label} PEM body is not valid base64"))?;
    if der.is_empty() {
        return Err(format!("{label} PEM body is empty"));
    }
    Ok((label, der))
}

/// One DER element: tag and contents; `rest` follows it.
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
    rest: &'a [u8],
}

/// Reads one DER element (single-byte tags, definite lengths up to 4 length bytes).
fn read_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, after) = input.split_at(count);
        input = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    (input.len() >= len).then(|| Tlv {
        tag,
        value: &input[..len],
        rest: &input[len..],
    })
}

/// Appends a DER element: `tag`, the definite length (short or long form), `contents`.
fn write_tlv(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
}

/// Wraps a SEC1 `ECPrivateKey` (RFC 5915) into a PKCS#8 `PrivateKeyInfo` (RFC 5208):
///
/// ```text
/// ECPrivateKey ::= SEQUENCE {
///   version        INTEGER { ecPrivkeyVer1(1) },
///   privateKey     OCTET STRING,
///   parameters [0] ECParameters {{ NamedCurve }} OPTIONAL,
///   publicKey  [1] BIT STRING OPTIONAL }
///
/// PrivateKeyInfo ::= SEQUENCE {
///   version             INTEGER (0),
///   privateKeyAlgorithm SEQUENCE { id-ecPublicKey, namedCurve },
///   privateKey          OCTET STRING (the ECPrivateKey DER, unchanged) }
/// ```
///
/// The curve comes from `parameters` (or, when absent, the scalar's length). `ring` needs the
/// `publicKey` field (Helm, Terraform and OpenSSL write it); without it the key is refused here.
fn sec1_to_pkcs8(
    sec1: &[u8],
) -> Result<
    (
        &'static str,
        &'static signature::EcdsaSigningAlgorithm,
        Vec<u8>,
    ),
    String,
> {
    let bad = || "EC PRIVATE KEY PEM is not a valid SEC1 ECPrivateKey".to_owned();
    let outer = read_tlv(sec1).filter(|t| t.tag == 0x30).ok_or_else(bad)?;
    let version = read_tlv(outer.value)
        .filter(|t| t.tag == 0x02 && t.value == [1])
        .ok_or_else(bad)?;
    let private_key = read_tlv(version.rest)
        .filter(|t| t.tag == 0x04)
        .ok_or_else(bad)?;
    let mut curve_oid = None;
    let mut has_public_key = false;
    let mut rest = private_key.rest;
    while !rest.is_empty() {
        let field = read_tlv(rest).ok_or_else(bad)?;
        match field.tag {
            0xa0 => curve_oid = Some(field.value),
            0xa1 => has_public_key = true,
            _ => return Err(bad()),
        }
        rest = field.rest;
    }
    let (crv, oid, params): (_, _, &'static signature::EcdsaSigningAlgorithm) =
        match (curve_oid, private_key.value.len()) {
            (Some(OID_P256), _) | (None, 32) => (
                "P-256",
                OID_P256,
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            ),
            (Some(OID_P384), _) | (None, 48) => (
                "P-384",
                OID_P384,
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            ),
            _ => {
                return Err(
                    "EC PRIVATE KEY PEM uses an unsupported curve (P-256 or P-384 only)".into(),
                );
            }
        };
    if !has_public_key {
        return Err(
            "EC PRIVATE KEY PEM has no public key, which ring requires; re-export it with `openssl ec -in <file> -out <file>`"
                .into(),
        );
    }
    // AlgorithmIdentifier: SEQUENCE { id-ecPublicKey, namedCurve OID }.
    let mut algorithm = Vec::with_capacity(OID_EC_PUBLIC_KEY.len() + oid.len());
    algorithm.extend_from_slice(OID_EC_PUBLIC_KEY);
    algorithm.extend_from_slice(oid);
    let mut body = Vec::with_capacity(sec1.len() + 32);
    write_tlv(&mut body, 0x02, &[0]); // version 0 (v1)
    write_tlv(&mut body, 0x30, &algorithm);
    write_tlv(&mut body, 0x04, sec1); // the ECPrivateKey, as is
    let mut pkcs8 = Vec::with_capacity(body.len() + 4);
    write_tlv(&mut pkcs8, 0x30, &body);
    Ok((crv, params, pkcs8))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order, no whitespace.
fn thumbprint(canonical: &str) -> String {
    b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
}

fn ec_jwk(crv: &str, public_point: &[u8], pkcs8: Vec<u8>) -> Jwk {
    // Uncompressed point: 0x04 || x || y.
    let coordinates = public_point.get(1..).unwrap_or_default();
    let (x, y) = coordinates.split_at(coordinates.len() / 2);
    let (x, y) = (b64(x), b64(y));
    let kid = thumbprint(&format!(
        r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#
    ));
    Jwk {
        kty: "EC".to_owned(),
        kid: Some(kid),
        use_: Some("sig".to_owned()),
        alg: Some(if crv == "P-384" { "ES384" } else { "ES256" }.to_owned()),
        crv: Some(crv.to_owned()),
        x: Some(x),
        y: Some(y),
        private_der: Some(PrivateDer::EcPkcs8(pkcs8)),
        ..Jwk::default()
    }
}

fn rsa_jwk(public: &ring::rsa::PublicKey, der: PrivateDer) -> Jwk {
    let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(public);
    // JWA: unsigned big-endian without leading zero bytes.
    let unsigned = |v: &[u8]| -> String {
        let skip = v.iter().take_while(|&&b| b == 0).count();
        b64(&v[skip..])
    };
    let (n, e) = (unsigned(&components.n), unsigned(&components.e));
    let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
    Jwk {
        kty: "RSA".to_owned(),
        kid: Some(kid),
        use_: Some("sig".to_owned()),
        alg: Some("RS256".to_owned()),
        n: Some(n),
        e: Some(e),
        private_der: Some(der),
        ..Jwk::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_roundtrip_in_short_and_long_form() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let contents = vec![7u8; len];
            let mut out = Vec::new();
            write_tlv(&mut out, 0x04, &contents);
            let tlv = read_tlv(&out).unwrap_or_else(|| panic!("len {len}"));
            assert_eq!((tlv.tag, tlv.value.len(), tlv.rest.len()), (0x04, len, 0));
        }
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            thumbprint(&canonical),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn sec1_without_public_key_is_refused_clearly() {
        // SEQUENCE { INTEGER 1, OCTET STRING (32 bytes), [0] prime256v1 } — no [1] publicKey.
        let mut fields = Vec::new();
        write_tlv(&mut fields, 0x02, &[1]);
        write_tlv(&mut fields, 0x04, &[0x11; 32]);
        write_tlv(&mut fields, 0xa0, OID_P256);
        let mut sec1 = Vec::new();
        write_tlv(&mut sec1, 0x30, &fields);
        let err = sec1_to_pkcs8(&sec1).err().unwrap_or_default();
        assert!(err.contains("no public key"), "{err}");
    }

    #[test]
    fn garbage_is_refused_without_echoing_it() {
        let secret = "c2VjcmV0LWtleS1tYXRlcmlhbA";
        for text in [
            format!("-----BEGIN EC PRIVATE KEY-----\n{secret}\n-----END EC PRIVATE KEY-----\n"),
            format!("-----BEGIN PRIVATE KEY-----\n{secret}==\n-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN RSA PRIVATE KEY-----\n!!{secret}\n-----END RSA PRIVATE KEY-----\n"),
            format!("-----BEGIN CERTIFICATE-----\n{secret}\n-----END CERTIFICATE-----\n"),
            format!("-----BEGIN PRIVATE KEY-----\n{secret}\n"),
        ] {
            let err = private_key_from_pem(text.as_bytes())
                .err()
                .unwrap_or_default();
            assert!(!err.is_empty() && !err.contains(secret), "{err}");
        }
    }
}
