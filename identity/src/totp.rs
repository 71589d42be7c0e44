//! TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, ±1 step of clock skew):
//! secrets, `otpauth://` URLs, code checks that report the step they matched (so a code cannot be
//! used twice in its window), and the enrolment QR code as a `data:image/png;base64,` URI.

use base64::Engine as _;
use rand::Rng;
use ring::hmac;
use subtle::ConstantTimeEq;

const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;

/// A TOTP secret (20 random bytes). Never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    pub fn generate() -> Self {
        Self(rand::rng().random::<[u8; 20]>().to_vec())
    }

    /// The RFC 4648 base32 form (no padding) shown to users and put in `otpauth://` URLs.
    pub fn base32(&self) -> String {
        base32_encode(&self.0)
    }

    pub fn from_base32(text: &str) -> Option<Self> {
        base32_decode(text).map(Self)
    }

    /// The code for a time step.
    pub fn code_at(&self, step: i64) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let tag = hmac::sign(&key, &step.to_be_bytes());
        let digest = tag.as_ref();
        let offset = usize::from(digest[digest.len() - 1] & 0x0f);
        let value = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        format!("{:06}", value % 10u32.pow(DIGITS))
    }

    /// The step a code matches at `now_ms` (current, previous or next step), compared in
    /// constant time.
    pub fn matching_step(&self, code: &str, now_ms: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS as usize {
            return None;
        }
        let current = now_ms.div_euclid(1000).div_euclid(STEP_SECONDS);
        let mut found = None;
        for step in [current - 1, current, current + 1] {
            let expected = self.code_at(step);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
                found = found.or(Some(step));
            }
        }
        found
    }
}

/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_url(secret: &Secret, issuer: &str, account: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer).replace('+', "%20"),
        enc(account).replace('+', "%20"),
        secret.base32(),
        enc(issuer).replace('+', "%20"),
    )
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let value = ALPHABET
            .iter()
            .position(|&a| char::from(a) == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | u32::try_from(value).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The QR code of `text` as a `data:image/png;base64,` URI (black modules on white, 4-module
/// quiet zone, 4 pixels per module).
pub fn qr_data_uri(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let modules = code.width();
    let scale = 4;
    let quiet = 4;
    let size = (modules + 2 * quiet) * scale;
    let colors = code.to_colors();
    let mut raw = Vec::with_capacity(size * (size + 1));
    for y in 0..size {
        raw.push(0u8); // filter: none
        for x in 0..size {
            let (mx, my) = (x / scale, y / scale);
            let dark = mx >= quiet
                && my >= quiet
                && mx < quiet + modules
                && my < quiet + modules
                && colors[(my - quiet) * modules + (mx - quiet)] == qrcode::Color::Dark;
            raw.push(if dark { 0 } else { 255 });
        }
    }
    let width = u32::try_from(size).ok()?;
    let png = png_grayscale(width, width, &raw);
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

/// A minimal PNG: 8-bit grayscale, `rows` already prefixed with filter bytes, stored (not
/// compressed) deflate blocks.
fn png_grayscale(width: u32, height: u32, rows: &[u8]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &header);
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = rows.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in rows {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = 0xffff_ffffu32;
    for &byte in kind.iter().chain(data) {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                0xedb8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    out.extend_from_slice(&(!crc).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, truncated to 6 digits.
    #[test]
    fn rfc6238_vectors() {
        let secret = Secret(b"12345678901234567890".to_vec());
        for (seconds, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(secret.code_at(seconds / 30), code);
            assert!(secret.matching_step(code, seconds * 1000).is_some());
        }
    }

    #[test]
    fn codes_outside_one_step_of_skew_are_refused() {
        let secret = Secret::generate();
        let now = 1_700_000_000_000;
        let step = now / 1000 / 30;
        assert_eq!(
            secret.matching_step(&secret.code_at(step - 1), now),
            Some(step - 1)
        );
        assert_eq!(
            secret.matching_step(&secret.code_at(step + 1), now),
            Some(step + 1)
        );
        let far = secret.code_at(step + 3);
        if far != secret.code_at(step)
            && far != secret.code_at(step - 1)
            && far != secret.code_at(step + 1)
        {
            assert_eq!(secret.matching_step(&far, now), None);
        }
        assert_eq!(secret.matching_step("12345", now), None);
    }

    #[test]
    fn base32_round_trip_and_rfc4648_vector() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        let secret = Secret::generate();
        assert_eq!(Secret::from_base32(&secret.base32()).unwrap().0, secret.0);
    }

    #[test]
    fn qr_is_a_png_data_uri() {
        let uri = qr_data_uri("otpauth://totp/x:y?secret=ABC").unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(uri.strip_prefix("data:image/png;base64,").unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
