//! Ed25519 signatures and SHA-256 digests, from ring: the crypto provider the TLS
//! stack already carries, so fleet sync adds no second crypto crate.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("not {0} hex digits")]
    Hex(usize),
    #[error("the system random source failed")]
    Random,
    #[error("not a valid Ed25519 key")]
    Key,
    #[error("the signature does not match")]
    Signature,
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Exactly `len` bytes from `2 * len` hex digits (either case).
pub fn unhex(s: &str, len: usize) -> Result<Vec<u8>, CryptoError> {
    let s = s.trim();
    if s.len() != len * 2 {
        return Err(CryptoError::Hex(len * 2));
    }
    let digit = |c: u8| char::from(c).to_digit(16).ok_or(CryptoError::Hex(len * 2));
    s.as_bytes()
        .chunks(2)
        .map(|p| Ok(u8::try_from(digit(p[0])? * 16 + digit(p[1])?).unwrap_or(0)))
        .collect()
}

/// Is `s` a SHA-256 digest as manifests write it: 64 lowercase hex digits?
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A public key in its one spelling: 64 lowercase hex digits of a valid point.
pub fn public_key_hex(s: &str) -> Result<String, CryptoError> {
    let bytes = unhex(s, 32)?;
    Ok(hex(&bytes))
}

/// A private signing key, kept as its 32-byte seed.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    seed: [u8; 32],
}

impl SigningKey {
    pub fn generate() -> Result<SigningKey, CryptoError> {
        use ring::rand::SecureRandom;
        let mut seed = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| CryptoError::Random)?;
        SigningKey::from_seed(seed)
    }

    fn from_seed(seed: [u8; 32]) -> Result<SigningKey, CryptoError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| CryptoError::Key)?;
        Ok(SigningKey { pair, seed })
    }

    /// A key file's text: the seed as 64 hex digits.
    pub fn from_hex(text: &str) -> Result<SigningKey, CryptoError> {
        let bytes = unhex(text, 32)?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes);
        SigningKey::from_seed(seed)
    }

    pub fn seed_hex(&self) -> String {
        hex(&self.seed)
    }

    pub fn public_hex(&self) -> String {
        hex(self.pair.public_key().as_ref())
    }

    pub fn sign_hex(&self, msg: &[u8]) -> String {
        hex(self.pair.sign(msg).as_ref())
    }
}

/// Checks `signature` (128 hex digits) of `msg` under `public` (64 hex digits).
pub fn verify(public: &str, msg: &[u8], signature: &str) -> Result<(), CryptoError> {
    let key = unhex(public, 32)?;
    let sig = unhex(signature, 64).map_err(|_| CryptoError::Signature)?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(msg, &sig)
        .map_err(|_| CryptoError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip_and_tampering_fails() {
        let k = SigningKey::generate().expect("key");
        let again = SigningKey::from_hex(&k.seed_hex()).expect("from seed");
        assert_eq!(k.public_hex(), again.public_hex());
        let sig = k.sign_hex(b"manifest");
        verify(&k.public_hex(), b"manifest", &sig).expect("valid");
        assert_eq!(
            verify(&k.public_hex(), b"manifesT", &sig),
            Err(CryptoError::Signature)
        );
        let other = SigningKey::generate().expect("key");
        assert_eq!(
            verify(&other.public_hex(), b"manifest", &sig),
            Err(CryptoError::Signature)
        );
        assert_eq!(
            verify(&k.public_hex(), b"manifest", "00"),
            Err(CryptoError::Signature)
        );
    }

    #[test]
    fn digests_and_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_digest(&sha256_hex(b"")));
        assert!(!is_digest(&sha256_hex(b"").to_uppercase()));
        assert_eq!(unhex("0aFf", 2).expect("hex"), vec![10, 255]);
        assert!(unhex("0g00", 2).is_err());
        assert!(unhex("00", 2).is_err());
    }
}
