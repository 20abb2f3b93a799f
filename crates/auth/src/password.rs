//! Passwords: stored only as Argon2id hashes in PHC form (the parameters travel
//! inside each hash, so they can be raised later without breaking old ones).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::secret;

/// Memory per hash in KiB, passes, lanes. 19 MiB and 2 passes is OWASP's
/// recommended minimum for Argon2id; measured at about 40 ms on an x86 core
/// and (see BENCHMARKS.md) well under 500 ms on a Cortex-A72. Concurrent
/// hashes are bounded by the caller (`Auth`), so memory stays bounded too.
pub const M_COST_KIB: u32 = 19 * 1024;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

pub const MIN_LEN: usize = 8;
/// Longer inputs only cost hashing time; nobody types more.
pub const MAX_LEN: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("密码长度必须在 {MIN_LEN} 到 {MAX_LEN} 个字符之间")]
    Length,
    #[error("密码哈希失败: {0}")]
    Hash(String),
    #[error("{0}")]
    Random(#[from] secret::RandomError),
}

fn hasher() -> &'static Argon2<'static> {
    static A: OnceLock<Argon2<'static>> = OnceLock::new();
    A.get_or_init(|| {
        // The constants are valid Argon2 parameters; `default()` is only the
        // unreachable fallback that keeps this free of a panic path.
        let params =
            Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_else(|_| Params::default());
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    })
}

pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if (MIN_LEN..=MAX_LEN).contains(&n) {
        Ok(())
    } else {
        Err(PasswordError::Length)
    }
}

/// The PHC string of a new hash of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_policy(password)?;
    let salt_bytes: [u8; 16] = secret::random()?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Does `password` match the stored hash? A hash that cannot be parsed matches
/// nothing. Inputs past `MAX_LEN` are refused before any work.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_LEN * 4 {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of one verification against a hash that matches nothing, so
/// that an unknown or disabled user answers as slowly as a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("not-a-password-anyone-has").unwrap_or_default());
    let _ = verify(password, phc);
}

/// A password for a new account: 20 characters from an alphabet without look-alikes
/// (about 115 bits).
pub fn generate() -> Result<String, PasswordError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 20] = secret::random()?;
    // 256 % 56 != 0 gives a bias of under 1 %: irrelevant at this length.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_its_password_and_is_argon2id() {
        let h = hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
        assert!(!verify("correct horse", "not a phc string"));
        assert_ne!(h, hash("correct horse").expect("hash"), "salted");
    }

    #[test]
    fn policy_bounds_length() {
        assert!(matches!(hash("short"), Err(PasswordError::Length)));
        assert!(check_policy(&"x".repeat(MAX_LEN + 1)).is_err());
        assert!(!verify(
            &"x".repeat(5000),
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"
        ));
    }

    #[test]
    fn generated_passwords_pass_the_policy_and_differ() {
        let a = generate().expect("random");
        assert_eq!(a.len(), 20);
        check_policy(&a).expect("policy");
        assert_ne!(a, generate().expect("random"));
    }

    /// Not a benchmark assertion: prints the cost so the figure in
    /// BENCHMARKS.md can be reproduced (`cargo test --release argon2_cost -- --nocapture`).
    #[test]
    fn argon2_cost() {
        let h = hash("measure-me-please").expect("hash");
        let t = std::time::Instant::now();
        for _ in 0..3 {
            assert!(verify("measure-me-please", &h));
        }
        println!("argon2id verify: {:?} per login", t.elapsed() / 3);
    }
}
