//! RS256 verification as the `jwt` authenticator does it for a token it has not seen (no
//! verified-token cache), against the same check with OpenSSL and a key parsed once.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-rel cargo bench -p portcullis-gateway --bench jwt`.

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_gateway::jose::{self, JwkSet, Signer};
use serde_json::json;

fn bench(c: &mut Criterion) {
    let text = include_str!("../tests/fixtures/rsa-private.jwks.json");
    let set: JwkSet = serde_json::from_str(text).unwrap_or_else(|e| panic!("fixture: {e}"));
    let private = &set.keys[0];
    let public = private.public().unwrap_or_else(|| panic!("no public key"));
    let signer = Signer::from_jwk(private).unwrap_or_else(|e| panic!("signer: {e}"));
    let token = signer
        .sign(&json!({"sub": "alice", "iss": "https://issuer.example", "exp": 4_102_444_800u64}))
        .unwrap_or_else(|e| panic!("sign: {e}"));

    c.bench_function("jwt/rs256_decode_and_verify", |b| {
        b.iter(|| {
            let decoded = jose::decode(black_box(&token)).unwrap_or_else(|e| panic!("{e}"));
            decoded.verify(&public).unwrap_or_else(|e| panic!("{e}"));
        })
    });

    let (signing_input, signature) = token
        .rsplit_once('.')
        .unwrap_or_else(|| panic!("token has no signature"));
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap_or_else(|e| panic!("{e}"));
    let n = URL_SAFE_NO_PAD
        .decode(public.n.as_deref().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let e = URL_SAFE_NO_PAD
        .decode(public.e.as_deref().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));

    c.bench_function("jwt/rs256_ring_verify_only", |b| {
        let key = ring::signature::RsaPublicKeyComponents { n: &n, e: &e };
        b.iter(|| {
            key.verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                black_box(signing_input.as_bytes()),
                black_box(&signature),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        })
    });

    c.bench_function("jwt/rs256_openssl_parsed_key_verify_only", |b| {
        let rsa = openssl::rsa::Rsa::from_public_components(
            openssl::bn::BigNum::from_slice(&n).unwrap_or_else(|e| panic!("{e}")),
            openssl::bn::BigNum::from_slice(&e).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let key = openssl::pkey::PKey::from_rsa(rsa).unwrap_or_else(|e| panic!("{e}"));
        b.iter(|| {
            let mut verifier =
                openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key)
                    .unwrap_or_else(|e| panic!("{e}"));
            verifier
                .update(black_box(signing_input.as_bytes()))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(verifier.verify(black_box(&signature)).unwrap_or(false));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
