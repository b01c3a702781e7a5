//! Errors of the repository layer: each says what failed and what to do.

use crate::format::FormatError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no repository at {location}: run `ferry init --repo {location}` to create one, or check the --repo path")]
    NotFound { location: String },

    #[error(
        "{location} already holds a repository (it has a config object); choose another location"
    )]
    AlreadyExists { location: String },

    #[error("{location} holds a repository of format version {found}; this ferry reads versions up to {supported}: upgrade ferry to use it")]
    NewerFormat {
        location: String,
        found: u64,
        supported: u64,
    },

    #[error("wrong password: none of the {keys} key(s) in {location} opens with it")]
    WrongPassword { location: String, keys: usize },

    #[error("damaged object {object}: {reason}")]
    Corrupt { object: String, reason: String },

    #[error("blob {0} is not in the index of this repository (the snapshot refers to data that is missing)")]
    UnknownBlob(crate::format::BlobId),

    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),

    #[error("invalid setting: {0}")]
    Invalid(String),

    /// A request this repository cannot satisfy, said as is.
    #[error("{0}")]
    Usage(String),

    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RepoError {
    pub fn corrupt(object: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        RepoError::Corrupt {
            object: object.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<FormatError> for RepoError {
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::Corrupt { object, reason } => RepoError::Corrupt { object, reason },
            FormatError::Invalid(s) => RepoError::Invalid(s),
        }
    }
}

pub type RepoResult<T> = Result<T, RepoError>;
