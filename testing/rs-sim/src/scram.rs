//! Server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as MongoDB runs it: `saslStart` carries the
//! client-first message, the server answers with its nonce, salt and iteration count, `saslContinue`
//! carries the proof and the server answers with its signature and `done: true` (the driver asks for
//! `skipEmptyExchange`).
//!
//! Passwords are stored only as salted keys, like MongoDB's `SCRAM-SHA-256` credentials. The
//! simulator does not apply SASLprep: passwords with non-ASCII characters are out of scope.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// MongoDB's default for SCRAM-SHA-256 (`scramSHA256IterationCount`).
pub const ITERATIONS: u32 = 15_000;

/// The stored credential of one user.
#[derive(Clone)]
pub struct Credential {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(SCRAM-SHA-256, redacted)")
    }
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; the error cannot happen.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

impl Credential {
    /// Derive the stored keys from a password with a fresh random salt.
    pub fn new(password: &str) -> Self {
        let mut salt = vec![0u8; 28];
        rand::rng().fill_bytes(&mut salt);
        Self::with_salt(password, salt, ITERATIONS)
    }

    fn with_salt(password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key).to_vec();
        let server_key = hmac(&salted, b"Server Key");
        Self {
            salt,
            iterations,
            stored_key,
            server_key,
        }
    }
}

/// Why a SCRAM exchange failed. MongoDB answers every one of these with code 18,
/// "Authentication failed.", so the client learns nothing about which part was wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM message")]
    Malformed,
    #[error("unknown user")]
    UnknownUser,
    #[error("nonce mismatch")]
    Nonce,
    #[error("wrong proof")]
    Proof,
}

/// A conversation after the first round.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub user: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    credential: Credential,
}

fn attr(part: &str, key: char) -> Result<&str, ScramError> {
    part.strip_prefix(key)
        .and_then(|p| p.strip_prefix('='))
        .ok_or(ScramError::Malformed)
}

/// The user name a client-first message names (`n,,n=<user>,r=<nonce>`).
pub fn client_first_user(client_first: &[u8]) -> Result<String, ScramError> {
    let msg = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
    let bare = msg.strip_prefix("n,,").ok_or(ScramError::Malformed)?;
    let user = bare.split(',').next().ok_or(ScramError::Malformed)?;
    Ok(attr(user, 'n')?.replace("=2C", ",").replace("=3D", "="))
}

/// First round: answer the client-first message for a user whose credential is known.
pub fn server_first(
    client_first: &[u8],
    credential: &Credential,
) -> Result<(Conversation, Vec<u8>), ScramError> {
    let user = client_first_user(client_first)?;
    let msg = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
    let bare = msg.strip_prefix("n,,").ok_or(ScramError::Malformed)?;
    let client_nonce = attr(bare.split(',').nth(1).ok_or(ScramError::Malformed)?, 'r')?;
    let mut server_nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut server_nonce);
    let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&credential.salt),
        credential.iterations
    );
    let bytes = server_first.clone().into_bytes();
    Ok((
        Conversation {
            user,
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
            credential: credential.clone(),
        },
        bytes,
    ))
}

/// Second round: check the proof; on success the server-final message (`v=<signature>`).
pub fn server_final(conv: &Conversation, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
    let msg = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed)?;
    let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
    let nonce = without_proof
        .split(',')
        .find_map(|p| p.strip_prefix("r="))
        .ok_or(ScramError::Malformed)?;
    if nonce != conv.nonce {
        return Err(ScramError::Nonce);
    }
    let proof = B64.decode(proof).map_err(|_| ScramError::Malformed)?;
    let auth_message = format!(
        "{},{},{}",
        conv.client_first_bare, conv.server_first, without_proof
    );
    let signature = hmac(&conv.credential.stored_key, auth_message.as_bytes());
    if proof.len() != signature.len() {
        return Err(ScramError::Proof);
    }
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    if Sha256::digest(&client_key).as_slice() != conv.credential.stored_key.as_slice() {
        return Err(ScramError::Proof);
    }
    let server_sig = hmac(&conv.credential.server_key, auth_message.as_bytes());
    Ok(format!("v={}", B64.encode(server_sig)).into_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 7677 section 3 test vector (user "user", password "pencil").
    #[test]
    fn rfc7677_exchange_verifies_and_signs() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = Credential::with_salt("pencil", salt, 4096);
        let conv = Conversation {
            user: "user".into(),
            client_first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".into(),
            server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            credential: cred,
        };
        let client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let v = server_final(&conv, client_final).unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let wrong = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAAZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(server_final(&conv, wrong), Err(ScramError::Proof));
    }

    #[test]
    fn debug_output_never_shows_keys() {
        let c = Credential::new("s3cret-password");
        assert_eq!(format!("{c:?}"), "Credential(SCRAM-SHA-256, redacted)");
        assert_eq!(client_first_user(b"n,,n=root,r=abc").unwrap(), "root");
    }
}
