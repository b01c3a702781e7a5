//! The S3-compatible services ferry knows, and every quirk that sets them
//! apart, in one place.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An S3-compatible service. Chooses the addressing style, the checksums
/// sent with uploads and how a create-if-absent is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// Amazon S3: virtual-hosted style, regional endpoints.
    #[default]
    Aws,
    /// Alibaba Cloud OSS through its S3-compatible endpoint.
    Oss,
    Minio,
    Ceph,
    Garage,
    /// Any other S3-compatible server; the most conservative choices.
    Generic,
}

/// How `put_if_absent` keeps an existing object from being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionalCreate {
    /// `If-None-Match: *` on PutObject; the server answers 412 when the key
    /// is taken. Atomic on the server.
    IfNoneMatch,
    /// OSS's `x-oss-forbid-overwrite: true`; the server answers 409
    /// `FileAlreadyExists` when the key is taken. Atomic on the server.
    OssForbidOverwrite,
    /// HEAD, then PUT, then GET to check that the stored bytes are ours.
    /// Not atomic between clients: two writers whose HEADs both find the key
    /// free can both see their own bytes when they read back, if the second
    /// PUT lands after the first reader checked. Used where the server is not
    /// known to honour a condition (a server that ignores an unknown header
    /// would silently overwrite). Within one process, creates of one key are
    /// serialised, so a single ferry never races itself.
    WriteThenVerify,
}

/// The quirks of one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
    pub path_style: bool,
    /// Send `x-amz-checksum-crc32c` (and ask for it back on GET) beside
    /// `Content-MD5`. Off where the service does not know the flexible
    /// checksum headers; `Content-MD5` is sent with every PUT regardless.
    /// The SDK's own checksum calculation is always "when required", so it
    /// never switches to aws-chunked uploads, which OSS rejects.
    pub flexible_checksums: bool,
    pub conditional_create: ConditionalCreate,
}

impl Provider {
    pub const ALL: [Provider; 6] = [
        Provider::Aws,
        Provider::Oss,
        Provider::Minio,
        Provider::Ceph,
        Provider::Garage,
        Provider::Generic,
    ];

    pub fn quirks(self) -> Quirks {
        use ConditionalCreate::*;
        let (path_style, flexible_checksums, conditional_create) = match self {
            Provider::Aws => (false, true, IfNoneMatch),
            Provider::Oss => (false, false, OssForbidOverwrite),
            Provider::Minio => (true, true, IfNoneMatch),
            Provider::Ceph => (true, false, IfNoneMatch),
            Provider::Garage => (true, false, WriteThenVerify),
            Provider::Generic => (true, false, WriteThenVerify),
        };
        Quirks {
            path_style,
            flexible_checksums,
            conditional_create,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Oss => "oss",
            Provider::Minio => "minio",
            Provider::Ceph => "ceph",
            Provider::Garage => "garage",
            Provider::Generic => "generic",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown S3 provider {0:?}; expected one of aws, oss, minio, ceph, garage, generic")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownProvider(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.name().parse::<Provider>().unwrap(), p);
        }
        assert_eq!("OSS".parse::<Provider>().unwrap(), Provider::Oss);
        assert!("s4".parse::<Provider>().is_err());
    }

    #[test]
    fn only_aws_and_oss_use_virtual_hosts() {
        for p in Provider::ALL {
            let virtual_hosted = matches!(p, Provider::Aws | Provider::Oss);
            assert_eq!(!p.quirks().path_style, virtual_hosted, "{p}");
        }
    }
}
