//! The self-signed certificate, made with ring alone: an ECDSA P-256 key and a
//! minimal X.509 v3 certificate (subject = issuer, subjectAltName for every
//! name). A certificate library would cost the binary about what this whole
//! module does not (see the size notes in BENCHMARKS.md).

use std::net::IpAddr;

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// 1.2.840.10045.4.3.2 ecdsa-with-SHA256
const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// 1.2.840.10045.2.1 id-ecPublicKey
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7 prime256v1
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 2.5.4.3 commonName
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.29.17 subjectAltName
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("key generation failed")]
    Key,
    #[error("signing failed")]
    Sign,
}

/// A DER element: tag, length, content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// subjectAltName entries: `iPAddress` for addresses, `dNSName` otherwise.
fn alt_names(names: &[String]) -> Vec<u8> {
    let mut all = Vec::new();
    for n in names {
        match n.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => all.extend(tlv(0x87, &a.octets())),
            Ok(IpAddr::V6(a)) => all.extend(tlv(0x87, &a.octets())),
            Err(_) => all.extend(tlv(0x82, n.as_bytes())),
        }
    }
    tlv(SEQUENCE, &all)
}

/// A new key and a self-signed certificate for `names`, both as PEM.
pub fn self_signed(names: &[String], common_name: &str) -> Result<(String, String), CertError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| CertError::Key)?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| CertError::Key)?;
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&rng, &mut serial).map_err(|_| CertError::Key)?;
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x40; // and no leading zero byte needed
    let algorithm = seq(&[&tlv(OID, ECDSA_SHA256)]);
    let name = seq(&[&tlv(
        SET,
        &seq(&[
            &tlv(OID, COMMON_NAME),
            &tlv(UTF8_STRING, common_name.as_bytes()),
        ]),
    )]);
    // From 1975 (a controller without a clock battery boots in 1970) to the
    // RFC 5280 "no well-defined expiration" date.
    let validity = seq(&[
        &tlv(UTC_TIME, b"750101000000Z"),
        &tlv(GENERALIZED_TIME, b"99991231235959Z"),
    ]);
    let spki = seq(&[
        &seq(&[&tlv(OID, EC_PUBLIC_KEY), &tlv(OID, P256)]),
        &tlv(
            BIT_STRING,
            &[&[0u8][..], key.public_key().as_ref()].concat(),
        ),
    ]);
    let san = seq(&[
        &tlv(OID, SUBJECT_ALT_NAME),
        &tlv(OCTET_STRING, &alt_names(names)),
    ]);
    let extensions = tlv(0xa3, &seq(&[&san]));
    let tbs = seq(&[
        &tlv(0xa0, &tlv(INTEGER, &[2])),
        &tlv(INTEGER, &serial),
        &algorithm,
        &name,
        &validity,
        &name,
        &spki,
        &extensions,
    ]);
    let sig = key.sign(&rng, &tbs).map_err(|_| CertError::Sign)?;
    let cert = seq(&[
        &tbs,
        &algorithm,
        &tlv(BIT_STRING, &[&[0u8][..], sig.as_ref()].concat()),
    ]);
    Ok((
        pem("CERTIFICATE", &cert),
        pem("PRIVATE KEY", pkcs8.as_ref()),
    ))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_the_long_form_past_127() {
        assert_eq!(tlv(4, &[9; 3]), vec![4, 3, 9, 9, 9]);
        let long = tlv(4, &[0; 300]);
        assert_eq!(&long[..4], &[4, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }
}
