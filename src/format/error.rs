//! Typed errors of the format layer.

/// Why bytes could not be decoded as the object they should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("{0}")]
    Malformed(String),
    #[error("unknown {what} {value}")]
    Unknown { what: &'static str, value: String },
    #[error("{what} out of bounds: {detail}")]
    OutOfBounds { what: &'static str, detail: String },
    #[error("authentication failed (wrong key, or the bytes were changed)")]
    Authentication,
}

impl DecodeError {
    pub fn malformed(reason: impl std::fmt::Display) -> Self {
        DecodeError::Malformed(reason.to_string())
    }
}

impl From<serde_json::Error> for DecodeError {
    fn from(e: serde_json::Error) -> Self {
        DecodeError::Malformed(e.to_string())
    }
}

/// An error of the format layer: a damaged object (named), or parameters
/// that the format does not allow.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("damaged object {object}: {reason}")]
    Corrupt { object: String, reason: String },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl FormatError {
    pub fn corrupt(object: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        FormatError::Corrupt {
            object: object.into(),
            reason: reason.to_string(),
        }
    }
}

pub type FormatResult<T> = Result<T, FormatError>;
