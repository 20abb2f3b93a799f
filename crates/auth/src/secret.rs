//! Random secrets and their stored form. API tokens and session ids are 256-bit
//! random values; only their SHA-256 is stored, so a copy of the database opens
//! nothing. Tokens carry a fixed prefix so that leaked ones are easy to find.

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of every API token: `vwed_` + 64 hex digits.
pub const TOKEN_PREFIX: &str = "vwed_";
const TOKEN_HEX: usize = 64;

#[derive(Debug, thiserror::Error)]
#[error("系统随机数不可用")]
pub struct RandomError;

pub type Digest = [u8; 32];

pub fn random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).map_err(|_| RandomError)?;
    Ok(b)
}

pub fn sha256(data: &[u8]) -> Digest {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// 256 random bits as 64 hex digits: session ids and CSRF tokens.
pub fn random_hex() -> Result<String, RandomError> {
    Ok(hex(&random::<32>()?))
}

/// A new API token and the digest under which it is stored.
pub fn new_token() -> Result<(String, Digest), RandomError> {
    let token = format!("{TOKEN_PREFIX}{}", random_hex()?);
    let d = sha256(token.as_bytes());
    Ok((token, d))
}

/// The stored digest of a token as presented, if it has the token's shape.
pub fn token_digest(presented: &str) -> Option<Digest> {
    let rest = presented.strip_prefix(TOKEN_PREFIX)?;
    (rest.len() == TOKEN_HEX && rest.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| sha256(presented.as_bytes()))
}

/// The stored digest of a session id from a cookie, if it has the right shape.
pub fn session_digest(presented: &str) -> Option<Digest> {
    (presented.len() == TOKEN_HEX && presented.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| sha256(presented.as_bytes()))
}

/// Equal without a timing side channel (CSRF tokens are compared this way).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_prefix_and_only_their_digest_matches() {
        let (t, d) = new_token().expect("random");
        assert!(t.starts_with("vwed_") && t.len() == 5 + 64, "{t}");
        assert_eq!(token_digest(&t), Some(d));
        assert_eq!(token_digest(&t[..t.len() - 1]), None);
        assert_eq!(token_digest("vwed_zz"), None);
        assert_eq!(token_digest(&t.replace("vwed_", "xxxx_")), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
