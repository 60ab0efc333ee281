//! Better Auth's signed cookie values, read as Better Auth reads them.
//!
//! Better Auth (through its HTTP layer, better-call 1.4: `signCookieValue`,
//! `getSignedCookie`) sets the session cookie to
//!
//! ```text
//! encodeURIComponent(token + "." + base64(HMAC-SHA256(key = secret, message = token)))
//! ```
//!
//! with the secret and the token as UTF-8, and standard base64 with padding (44
//! characters, ending in `=`). Reading it back, Better Auth trims the value, drops
//! surrounding double quotes, URL-decodes it when it holds a `%` (keeping it as it is
//! when that fails), splits at the last `.`, requires a signature of 44 characters
//! ending in `=`, and checks the HMAC. This module does the same, with a constant-time
//! comparison. It has no imports from the rest of the crate.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest cookie value looked at, in bytes: browsers keep at most about 4 KiB per
/// cookie, name included. Anything longer is refused before any work.
pub(crate) const MAX_VALUE_BYTES: usize = 4096;

/// Length of the signature's text: 32 bytes in padded base64.
const SIGNATURE_CHARS: usize = 44;

/// The signed value inside `cookie_value` (for the session cookie: the session token),
/// when its signature is that of `secret`; `None` for anything else.
pub(crate) fn verified_value(cookie_value: &str, secret: &[u8]) -> Option<String> {
    if cookie_value.len() > MAX_VALUE_BYTES {
        return None;
    }
    let value = try_decode(unquote(cookie_value.trim()));
    let dot = value.rfind('.')?;
    if dot < 1 {
        return None;
    }
    let (signed, signature) = (&value[..dot], &value[dot + 1..]);
    if signature.len() != SIGNATURE_CHARS || !signature.ends_with('=') {
        return None;
    }
    let signature = STANDARD.decode(signature).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(signed.as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&signature).ok()?;
    Some(signed.to_owned())
}

/// What Better Auth's cookie parser does to a value that starts with a double quote:
/// drops its first and last character.
fn unquote(value: &str) -> &str {
    match value.strip_prefix('"') {
        Some(rest) => {
            let mut chars = rest.chars();
            chars.next_back();
            chars.as_str()
        }
        None => value,
    }
}

/// JavaScript's `decodeURIComponent` when `value` holds a `%`, and `value` itself
/// when it holds none or cannot be decoded (a `%` without two hex digits after it, or
/// bytes that are not UTF-8), as Better Auth's `tryDecode`.
fn try_decode(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    match decode_uri_component(value) {
        Some(decoded) => Cow::Owned(decoded),
        None => Cow::Borrowed(value),
    }
}

fn decode_uri_component(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex_digit(*bytes.get(i + 1)?)?;
            let low = hex_digit(*bytes.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by better-call 1.4.5's `serializeSignedCookie` (the code Better Auth 1.7.25
    /// signs its session cookie with), as Set-Cookie carries them.
    const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";
    const TOKEN: &str = "wHE5RjDJyq4xIL92Y4k09Uh3IWkamZ4Q";
    const COOKIE: &str =
        "wHE5RjDJyq4xIL92Y4k09Uh3IWkamZ4Q.q5%2F6JSsDjWrmtUbq%2BSv%2Bwh9O51XdVimku%2BOOlSIvgaY%3D";
    const UNICODE_SECRET: &str = "ünïcødé secret ✓";
    const UNICODE_COOKIE: &str = "tok.xYrpd7tVJ%2Fvo8wF8vIPzwlnt0JZOlfmuVi7hH6mNQ7c%3D";

    fn verify(value: &str) -> Option<String> {
        verified_value(value, SECRET.as_bytes())
    }

    #[test]
    fn better_auths_own_cookies_verify_encoded_decoded_and_quoted() {
        assert_eq!(verify(COOKIE).as_deref(), Some(TOKEN));
        let decoded = decode_uri_component(COOKIE).unwrap();
        assert!(decoded.contains('/') && decoded.ends_with('='), "{decoded}");
        assert_eq!(verify(&decoded).as_deref(), Some(TOKEN));
        assert_eq!(verify(&format!("\"{COOKIE}\"")).as_deref(), Some(TOKEN));
        assert_eq!(verify(&format!("  {COOKIE} ")).as_deref(), Some(TOKEN));
        assert_eq!(
            verified_value(UNICODE_COOKIE, UNICODE_SECRET.as_bytes()).as_deref(),
            Some("tok")
        );
    }

    #[test]
    fn another_secret_or_any_changed_character_is_refused() {
        assert_eq!(verified_value(COOKIE, b"another secret"), None);
        assert_eq!(verified_value(COOKIE, b""), None);
        let decoded = decode_uri_component(COOKIE).unwrap();
        for i in 0..decoded.len() {
            for replacement in ['A', 'z', '0', '.', '%', '='] {
                let mut changed = decoded.clone().into_bytes();
                if changed[i] == replacement as u8 {
                    continue;
                }
                changed[i] = replacement as u8;
                let changed = String::from_utf8(changed).unwrap();
                assert_eq!(verify(&changed), None, "{changed}");
            }
        }
        // The token of another cookie with this cookie's signature.
        let (_, signature) = decoded.rsplit_once('.').unwrap();
        assert_eq!(verify(&format!("{TOKEN}x.{signature}")), None);
        assert_eq!(verify(&format!("x{TOKEN}.{signature}")), None);
    }

    #[test]
    fn malformed_values_are_refused() {
        let long = format!("{}{COOKIE}", " ".repeat(MAX_VALUE_BYTES));
        for value in [
            "",
            ".",
            "%",
            "%zz",
            TOKEN,
            &format!("{TOKEN}."),
            &format!(".{}", &COOKIE[TOKEN.len() + 1..]),
            // The signature without its padding, or with other padding.
            COOKIE.trim_end_matches("%3D"),
            &format!("{COOKIE}%3D"),
            // Percent-encoded invalid UTF-8 stays undecoded, and so unverified.
            &format!("{COOKIE}%FF"),
            "\0",
            &long,
        ] {
            assert_eq!(verify(value), None, "{value:?}");
        }
    }

    #[test]
    fn decoding_follows_decode_uri_component() {
        assert_eq!(try_decode("a%2Fb%3d"), "a/b=");
        assert_eq!(try_decode("a+b"), "a+b");
        assert_eq!(try_decode("%E2%9C%93"), "✓");
        // Failures leave the value as it is.
        assert_eq!(try_decode("100%"), "100%");
        assert_eq!(try_decode("%+1"), "%+1");
        assert_eq!(try_decode("%C3"), "%C3");
        assert_eq!(unquote("\"a\""), "a");
        assert_eq!(unquote("\"a"), "");
        assert_eq!(unquote("\""), "");
        assert_eq!(unquote("\"ü✓"), "ü");
    }
}
