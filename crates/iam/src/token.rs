//! Bearer tokens: `kiln_{id}_{secret}`.
//!
//! The id is public (it names the token in lists and the audit log and finds its record); the
//! secret is 256 random bits, shown once at creation. Only the SHA-256 of the secret is stored:
//! a high-entropy secret needs no slow hash, and a leaked database reveals no usable token.
//! Hashes are compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of every token, so secret scanners and people recognise one.
pub const PREFIX: &str = "kiln_";

/// A freshly made token.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Public id.
    pub id: String,
    /// What the client sends: `kiln_{id}_{secret}`.
    pub bearer: String,
    /// What the store keeps.
    pub hash: String,
}

/// Makes a token from the operating system's randomness (through `rand`'s CSPRNG).
pub fn generate() -> NewToken {
    let mut rng = rand::rng();
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id: String = id.iter().map(|byte| format!("{byte:02x}")).collect();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    NewToken {
        bearer: format!("{PREFIX}{id}_{secret}"),
        hash: hash(&secret),
        id,
    }
}

/// Splits a bearer token into its id and secret; `None` when it is not shaped like one.
pub fn parse(bearer: &str) -> Option<(&str, &str)> {
    let rest = bearer.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let well_formed = id.len() == 12
        && id.bytes().all(|byte| byte.is_ascii_hexdigit())
        && !secret.is_empty()
        && secret.len() <= 64;
    well_formed.then_some((id, secret))
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether `secret` is the one `stored` was made from, in time independent of where they differ.
pub fn verify(secret: &str, stored: &str) -> bool {
    hash(secret).as_bytes().ct_eq(stored.as_bytes()).into()
}

/// A service account name: a letter, then up to 99 letters, digits, `-`, `_`, `.` or `@`.
pub fn check_account(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = name.len() <= 100
        && chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    match valid {
        true => Ok(()),
        false => Err(format!(
            "service account {name:?} is invalid: start with a letter, then letters, digits, \
             '-', '_', '.' or '@', at most 100 characters"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_differ() {
        let token = generate();
        let (id, secret) = parse(&token.bearer).unwrap();
        assert_eq!(id, token.id);
        assert!(verify(secret, &token.hash));
        assert!(!verify("guess", &token.hash));
        assert_ne!(generate().bearer, token.bearer);
        assert!(!token.hash.contains(secret));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for bad in [
            "",
            "kiln_",
            "kiln_xyz_abc",
            "Bearer kiln_0123456789ab_s",
            "kiln_0123456789ab_",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        assert!(parse("kiln_0123456789ab_secret").is_some());
        assert!(check_account("ci-bot").is_ok());
        assert!(check_account("1bot").is_err());
        assert!(check_account("a b").is_err());
    }
}
