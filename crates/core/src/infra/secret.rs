//! `Secret`: a string that must never reach a log line, an error message or an API response.
//!
//! `Debug`, `Display` and `Serialize` all write `[redacted]`, so a secret cannot be written out by
//! accident. Call [`Secret::expose`] at the one place that needs the value (building a
//! connection, signing a token).

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// What `Debug` and `Display` print instead of a secret's value.
pub const REDACTED: &str = "[redacted]";

#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's value. Only for the code that hands it to a connection or a signer.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short one-way fingerprint (SHA-256, 16 hex digits): tells whether a secret changed
    /// without storing or showing it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.0.as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{secret:#?}"), REDACTED);
        assert_eq!(serde_json::to_string(&secret).unwrap(), format!("\"{REDACTED}\""));
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn a_struct_holding_a_secret_does_not_leak_it_through_derive_debug() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            password: Secret,
        }
        let printed = format!(
            "{:?}",
            Holder {
                password: "p@ss".into()
            }
        );
        assert!(!printed.contains("p@ss"), "{printed}");
        assert!(printed.contains(REDACTED));
    }
}
