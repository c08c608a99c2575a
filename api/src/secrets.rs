//! The Secrets of one replica set, named and generated in one place for the manager (federated
//! sets) and the agent (single-cluster sets): the keyfile the members authenticate to each other
//! with, and the credentials of the users FedState manages.
//!
//! Generated values are random and never the root password. The keyfile is what mongod accepts
//! (MongoDB manual, "Internal/Membership Authentication", Keyfiles: 6 to 1024 characters of the
//! base64 set; server source `src/mongo/db/auth/security_key.cpp`); [`check_keyfile`] says why
//! a given one is not. Nothing here prints a value.

use rand::Rng;
use rand::distr::Alphanumeric;

/// Key of the keyfile in the keyfile Secret.
pub const KEYFILE_KEY: &str = "keyfile";
/// Key of the root password in the credentials Secret (when the user gave no Secret of their own).
pub const ROOT_PASSWORD_KEY: &str = "password";
/// Key of the agent's own login (`clusterAdmin`, `userAdminAnyDatabase`).
pub const CLUSTER_ADMIN_PASSWORD_KEY: &str = "clusterAdminPassword";
/// Key of the exporter's login (`clusterMonitor`).
pub const CLUSTER_MONITOR_PASSWORD_KEY: &str = "clusterMonitorPassword";

/// Length of generated passwords (alphanumeric: about 190 bits).
pub const PASSWORD_LEN: usize = 32;
/// Random bytes of a generated keyfile: base64 makes 756 characters with no `=` padding.
const KEYFILE_BYTES: usize = 567;
/// mongod's bounds on a key's length (`security_key.cpp`).
pub const KEYFILE_MIN_LEN: usize = 6;
pub const KEYFILE_MAX_LEN: usize = 1024;

/// The keyfile Secret of `name`.
pub fn keyfile_secret_name(name: &str) -> String {
    format!("{name}-keyfile")
}

/// The credentials Secret of `name` (root, cluster admin and monitor passwords).
pub fn credentials_secret_name(name: &str) -> String {
    format!("{name}-credentials")
}

/// A new random password.
pub fn generate_password(rng: &mut impl Rng) -> String {
    (0..PASSWORD_LEN)
        .map(|_| char::from(rng.sample(Alphanumeric)))
        .collect()
}

/// A new random keyfile that mongod accepts (756 base64 characters).
pub fn generate_keyfile(rng: &mut impl Rng) -> String {
    use base64::Engine;
    let mut bytes = vec![0u8; KEYFILE_BYTES];
    rng.fill(bytes.as_mut_slice());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Why mongod would refuse a keyfile's content. Never carries the content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyfileError {
    #[error(
        "the keyfile has {0} characters (whitespace ignored); mongod needs {KEYFILE_MIN_LEN} to {KEYFILE_MAX_LEN}"
    )]
    Length(usize),
    #[error(
        "the keyfile contains {0:?}, which is not in the base64 set (A-Z a-z 0-9 + / =); mongod refuses it"
    )]
    Character(char),
}

/// Check a keyfile's content as mongod reads it: whitespace is dropped, then the key must be
/// 6–1024 characters of `A-Z a-z 0-9 + / =` (a `-` or `_`, as base64url gives, is refused).
pub fn check_keyfile(content: &str) -> Result<(), KeyfileError> {
    let key: Vec<char> = content.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(c) = key
        .iter()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
    {
        // A non-ASCII character is named as such so no part of the key is echoed.
        return Err(KeyfileError::Character(if c.is_ascii_punctuation() {
            *c
        } else {
            '?'
        }));
    }
    if !(KEYFILE_MIN_LEN..=KEYFILE_MAX_LEN).contains(&key.len()) {
        return Err(KeyfileError::Length(key.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn generated_keyfiles_are_what_mongod_accepts_and_differ() {
        let mut rng = StdRng::seed_from_u64(7);
        let a = generate_keyfile(&mut rng);
        let b = generate_keyfile(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a.len(), 756);
        assert_eq!(check_keyfile(&a), Ok(()));
        assert!(
            !a.contains('='),
            "no padding: {} bytes is a multiple of 3",
            KEYFILE_BYTES
        );
    }

    /// security_key.cpp: "security key ... must be between 6 and 1024 chars", "invalid char in
    /// key file"; whitespace (a trailing newline) does not count.
    #[test]
    fn keyfile_content_is_checked_as_mongod_does() {
        assert_eq!(check_keyfile("abcdef\n"), Ok(()));
        assert_eq!(check_keyfile("abcde"), Err(KeyfileError::Length(5)));
        assert_eq!(
            check_keyfile(&"a".repeat(1025)),
            Err(KeyfileError::Length(1025))
        );
        assert_eq!(
            check_keyfile("fedstate-test-keyfile"),
            Err(KeyfileError::Character('-'))
        );
        assert_eq!(check_keyfile("abc_def"), Err(KeyfileError::Character('_')));
        assert_eq!(check_keyfile("abcdéf"), Err(KeyfileError::Character('?')));
        assert!(
            !KeyfileError::Character('-')
                .to_string()
                .contains("fedstate")
        );
    }

    #[test]
    fn passwords_are_long_random_and_alphanumeric() {
        let mut rng = StdRng::seed_from_u64(8);
        let p = generate_password(&mut rng);
        assert_eq!(p.len(), PASSWORD_LEN);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(p, generate_password(&mut rng));
    }
}
