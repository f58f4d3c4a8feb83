//! The server's errors: [`ApiError`], a status code and Docker's `{"message": ...}` body that
//! every failed request answers with, and [`Error`], what can fail while setting up the
//! server's listeners.

use std::path::PathBuf;

use berth_engine::ErrorKind;
use http::StatusCode;

/// A failed request: the status and the message of the `{"message": ...}` body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: bad input.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The status an engine error kind maps to.
    pub fn status_of(kind: ErrorKind) -> StatusCode {
        match kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `{"message": "..."}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "message": self.message }).to_string()
    }
}

impl From<berth_engine::Error> for ApiError {
    fn from(e: berth_engine::Error) -> ApiError {
        ApiError::new(ApiError::status_of(e.kind()), e.to_string())
    }
}

impl From<berth_api::types::filters::FilterError> for ApiError {
    fn from(e: berth_api::types::filters::FilterError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

impl From<berth_api::version::VersionError> for ApiError {
    fn from(e: berth_api::version::VersionError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

/// What can fail while setting up listeners and TLS.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(String),
    #[error("{}: no {what} found in the file", path.display())]
    EmptyPem { path: PathBuf, what: &'static str },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_docker_statuses() {
        let cases = [
            (
                berth_engine::Error::NoSuchContainer("nope".into()),
                404,
                "No such container: nope",
            ),
            (
                berth_engine::Error::Conflict("in use".into()),
                409,
                "in use",
            ),
            (berth_engine::Error::Invalid("bad".into()), 400, "bad"),
            (
                berth_engine::Error::NotModified("started".into()),
                304,
                "started",
            ),
            (berth_engine::Error::Internal("boom".into()), 500, "boom"),
        ];
        for (err, status, msg) in cases {
            let api = ApiError::from(err);
            assert_eq!(api.status.as_u16(), status);
            assert_eq!(api.message, msg);
        }
        assert_eq!(
            ApiError::not_found("page not found").body(),
            r#"{"message":"page not found"}"#
        );
    }
}
