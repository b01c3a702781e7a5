//! Maps aws-sdk-s3 failures to store errors: a kind the retry wrapper and
//! callers act on, and a message naming the HTTP status, the S3 error code
//! and the cause.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::store::StoreErrorKind;

/// S3 error codes that may succeed when the request is sent again, whatever
/// their HTTP status. `BadDigest` and `IncompleteBody` mean the bytes were
/// damaged or cut in transit.
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "BadDigest",
    "IncompleteBody",
    "XAmzContentSHA256Mismatch",
    "ConditionalRequestConflict",
    "OperationAborted",
];

const NO_SPACE_CODES: &[&str] = &[
    "QuotaExceeded",
    "XMinioStorageFull",
    "StorageFull",
    "InsufficientStorage",
];

/// The HTTP status and S3 error code of a failure the server answered.
pub(crate) struct Answer {
    pub status: u16,
    pub code: Option<String>,
}

pub(crate) fn answer<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<Answer> {
    match err {
        SdkError::ServiceError(ctx) => Some(Answer {
            status: ctx.raw().status().as_u16(),
            code: ctx.err().code().map(str::to_string),
        }),
        _ => None,
    }
}

/// The class of an S3 status and error code.
pub fn classify(status: u16, code: Option<&str>) -> StoreErrorKind {
    let code = code.unwrap_or("");
    if TRANSIENT_CODES.contains(&code) {
        return StoreErrorKind::Transient;
    }
    if NO_SPACE_CODES.contains(&code) || status == 507 {
        return StoreErrorKind::NoSpace;
    }
    match status {
        404 => StoreErrorKind::NotFound,
        // The server lacks the operation; asking again will not help.
        501 => StoreErrorKind::Permanent,
        401 | 403 => StoreErrorKind::PermissionDenied,
        408 | 429 | 500..=599 => StoreErrorKind::Transient,
        _ => StoreErrorKind::Permanent,
    }
}

/// An error and its causes as one line of their `Display` texts, each
/// cause once: "dispatch failure: io error: ... Connection refused (os
/// error 111)". The SDK's own `DisplayErrorContext` appends the `Debug`
/// structure as well, which must not reach a user.
pub(crate) fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The kind and message of any SDK failure.
pub(crate) fn describe<E>(err: &SdkError<E>) -> (StoreErrorKind, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code();
            let message = ctx.err().message().unwrap_or("");
            let what = match (code, message) {
                (Some(c), "") => c.to_string(),
                (Some(c), m) => format!("{c}: {m}"),
                (None, _) if status == 404 => "not found".to_string(),
                // Answers without a body (HEAD) carry no code: the status
                // says it all; never show the SDK's structures.
                (None, _) => http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error")
                    .to_string(),
            };
            let hint = match code {
                Some("NoSuchBucket") => {
                    "; the bucket does not exist: create it, or run `ferry init` (or `ferry replicate` \
                     for a region of a --config file), which creates it where the credentials allow"
                }
                _ => "",
            };
            (
                classify(status, code),
                format!("HTTP {status} {what}{hint}"),
            )
        }
        // The request never left: a bad setting, or no credentials.
        SdkError::ConstructionFailure(_) => (
            StoreErrorKind::Permanent,
            format!("request not sent: {}", causes(err)),
        ),
        SdkError::DispatchFailure(d) if d.is_user() => (
            StoreErrorKind::Permanent,
            format!("request not sent: {}", causes(err)),
        ),
        // Timeouts, refused or reset connections, cut or unreadable responses.
        _ => (
            StoreErrorKind::Unreachable,
            format!("connection failed: {}", causes(err)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StoreErrorKind::*;

    #[derive(Debug)]
    struct Wrapped(&'static str, std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn causes_are_display_texts_without_debug_structures() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let text = causes(&Wrapped("tcp connect error", io));
        assert_eq!(text, "tcp connect error: connection refused");
        assert!(!text.contains('{'), "{text}");
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        // A cause whose text its parent already shows is not repeated.
        assert_eq!(
            causes(&Wrapped("connection refused", io)),
            "connection refused"
        );
    }

    #[test]
    fn statuses_and_codes() {
        assert_eq!(classify(404, Some("NoSuchKey")), NotFound);
        assert_eq!(classify(404, None), NotFound);
        assert_eq!(classify(403, Some("AccessDenied")), PermissionDenied);
        assert_eq!(classify(503, Some("SlowDown")), Transient);
        assert_eq!(classify(500, None), Transient);
        assert_eq!(classify(429, None), Transient);
        assert_eq!(classify(400, Some("RequestTimeout")), Transient);
        assert_eq!(classify(400, Some("BadDigest")), Transient);
        assert_eq!(classify(400, Some("InvalidArgument")), Permanent);
        assert_eq!(classify(412, Some("PreconditionFailed")), Permanent);
        assert_eq!(classify(416, Some("InvalidRange")), Permanent);
        assert_eq!(classify(409, Some("BucketAlreadyExists")), Permanent);
        assert_eq!(classify(507, None), NoSpace);
        assert_eq!(classify(501, Some("NotImplemented")), Permanent);
        assert_eq!(classify(403, Some("QuotaExceeded")), NoSpace);
    }
}
