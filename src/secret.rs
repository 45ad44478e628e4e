//! Secrets (API keys, signing keys, passwords) as a type that never prints.
//!
//! A [`Secret`] has no `Display`, and its `Debug` shows only which variable
//! it came from, so a secret cannot reach a log line, an error message or a
//! panic by accident. Code that needs the value calls [`Secret::expose`].

use crate::error;
use crate::error::Registered;
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value and the name of the variable it was read from.
#[derive(Clone)]
pub struct Secret {
    name: String,
    value: String,
}

impl Secret {
    /// Wraps `value`, read from the variable `name`. Surrounding whitespace
    /// (a trailing newline in a file) is dropped.
    pub fn new(name: &str, value: impl Into<String>) -> Result<Self, SecretError> {
        let value = value.into();
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(SecretError::Empty { name: name.into() });
        }
        Ok(Secret {
            name: name.into(),
            value: trimmed.to_owned(),
        })
    }

    /// Reads the secret `name` from the file at `path` (the `{name}_FILE`
    /// convention of container secrets).
    pub fn from_file(name: &str, path: &Path) -> Result<Self, SecretError> {
        let value = std::fs::read_to_string(path).map_err(|source| SecretError::File {
            name: name.into(),
            path: path.to_owned(),
            source,
        })?;
        Secret::new(name, value)
    }

    /// The variable this secret came from, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The secret itself. Only hand it to the code that uses it.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}: [redacted])", self.name)
    }
}

/// Why a secret could not be read. None of these carry the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("`{name}` is empty")]
    Empty { name: String },
    #[error("`{name}` is not valid UTF-8")]
    NotUtf8 { name: String },
    #[error("cannot read `{name}_FILE` (`{}`)", path.display())]
    File {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

inventory::submit!(Registered::of::<SecretError>());

impl error::Hint for SecretError {
    fn hint(&self) -> String {
        match self {
            SecretError::Empty { name } => {
                format!("set `{name}` to the secret, or `{name}_FILE` to a file that holds it")
            }
            SecretError::NotUtf8 { name } => {
                format!("secrets are plain text; check how `{name}` is exported")
            }
            SecretError::File { name, .. } => {
                format!("point `{name}_FILE` at a readable file, or set `{name}` itself")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("STRIPE_SECRET_KEY", "sk_test_abcdef123456").unwrap();
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("abcdef"), "{shown}");
        assert!(shown.contains("STRIPE_SECRET_KEY"), "{shown}");
    }

    #[test]
    fn value_is_trimmed() {
        let secret = Secret::new("X", "  whsec_1\n").unwrap();
        assert_eq!(secret.expose(), "whsec_1");
    }

    #[test]
    fn blank_value_is_an_error() {
        let error = Secret::new("GITHUB_TOKEN", " \n").unwrap_err().to_string();
        assert!(error.starts_with("`GITHUB_TOKEN` is empty"), "{error}");
    }
}
