//! Which kind of failure each error of the runtime is, for the script that met it:
//! one table, so that `io` and `integrations` keep their own error enums and a
//! script still gets `VWEDTimeoutError`, `VWEDDeviceError`, ... with the message.

use vwed_hal::{ErrorKind as HalKind, HalError};
use vwed_ipc::{ServiceError, ServiceErrorKind as K};

use super::FnCallError;
use vwed_integrations::http_client::HttpError;
use vwed_integrations::locations::LocationError;
use vwed_integrations::mail::MailError;
use vwed_integrations::task_server::TaskServerError;
use vwed_integrations::task_vars::TaskVarsError;
use vwed_io::IoOpError;
use vwed_registry::RegError;
use vwed_store::DataError;

/// An error that knows its kind; becomes a [`ServiceError`] with its message.
pub trait Kind: std::fmt::Display {
    fn kind(&self) -> K;
}

/// A service call's failure on its way to the script. Any error with a
/// [`Kind`] converts into it by `?`; the error types live in their own crates,
/// where the orphan rule forbids a `From<_> for ServiceError` of ours.
pub struct Failed(pub ServiceError);

impl<E: Kind> From<E> for Failed {
    fn from(e: E) -> Failed {
        Failed(ServiceError::new(e.kind(), e.to_string()))
    }
}

/// `e` as the script will see it.
pub fn service_error(e: impl Kind) -> ServiceError {
    Failed::from(e).0
}

impl From<ServiceError> for Failed {
    fn from(e: ServiceError) -> Failed {
        Failed(e)
    }
}

impl Kind for HalError {
    fn kind(&self) -> K {
        match HalError::kind(self) {
            HalKind::Timeout => K::Timeout,
            HalKind::QueueFull => K::Busy,
            HalKind::InvalidRequest => K::BadArguments,
            HalKind::Connect
            | HalKind::Io
            | HalKind::Protocol
            | HalKind::NotConnected
            | HalKind::Closed => K::Transport,
        }
    }
}

impl Kind for IoOpError {
    fn kind(&self) -> K {
        match self {
            IoOpError::NotConfigured => K::NotConfigured,
            IoOpError::UnknownTag(_)
            | IoOpError::UnknownDevice { .. }
            | IoOpError::UnknownRobot { .. } => K::NotFound,
            IoOpError::ReadOnly(_) => K::PermissionDenied,
            IoOpError::BadValue(_) | IoOpError::BadArgs(_) | IoOpError::Robot(_) => K::BadArguments,
            // The point has no good value because its device did not answer.
            IoOpError::BadQuality { .. } => K::Transport,
            IoOpError::Exception(ex) => K::DeviceException { code: ex.code() },
            IoOpError::Hal(h) => Kind::kind(h),
            IoOpError::Timeout(_) => K::Timeout,
        }
    }
}

impl Kind for FnCallError {
    fn kind(&self) -> K {
        match self {
            FnCallError::ScriptNotRunning(_) | FnCallError::NotRegistered(_) => K::NotFound,
            FnCallError::Timeout { .. } => K::Timeout,
            FnCallError::ArgumentMismatch { .. } => K::BadArguments,
            FnCallError::Failed { .. } => K::Raised,
            FnCallError::Gone(_) => K::Transport,
            FnCallError::Busy(_) => K::Busy,
        }
    }
}

impl Kind for HttpError {
    fn kind(&self) -> K {
        match self {
            HttpError::BadUrl(_)
            | HttpError::Scheme(_)
            | HttpError::BadMethod(_)
            | HttpError::BadArgs(_) => K::BadArguments,
            HttpError::NotAllowed { .. } => K::PermissionDenied,
            HttpError::Timeout(_) => K::Timeout,
            HttpError::TooLarge(_) => K::LimitExceeded,
            HttpError::Transport(_) => K::Transport,
            HttpError::Tls(_) => K::NotConfigured,
        }
    }
}

impl Kind for TaskServerError {
    fn kind(&self) -> K {
        match self {
            TaskServerError::NotConfigured | TaskServerError::BadBase(_) => K::NotConfigured,
            TaskServerError::BadTaskId => K::BadArguments,
            TaskServerError::Http(h) => Kind::kind(h),
            TaskServerError::Status { status, .. } => match status {
                404 => K::NotFound,
                409 => K::Conflict,
                408 | 504 => K::Timeout,
                429 | 503 => K::Busy,
                401 | 403 => K::PermissionDenied,
                400..=499 => K::BadArguments,
                _ => K::Transport,
            },
        }
    }
}

impl Kind for MailError {
    fn kind(&self) -> K {
        match self {
            MailError::NotConfigured | MailError::NoSender | MailError::Tls(_) => K::NotConfigured,
            MailError::BadAddress(_)
            | MailError::Recipients
            | MailError::SubjectTooLong
            | MailError::BodyTooLarge
            | MailError::BadAttachmentPath(_)
            | MailError::Build(_) => K::BadArguments,
            MailError::AttachmentTooLarge { .. } => K::LimitExceeded,
            MailError::AttachmentIo(_, e) if e.kind() == std::io::ErrorKind::NotFound => {
                K::NotFound
            }
            MailError::AttachmentIo(..) | MailError::AttachmentDir(..) => K::Internal,
            MailError::Send(_) => K::Transport,
            MailError::Timeout(_) => K::Timeout,
        }
    }
}

impl Kind for LocationError {
    fn kind(&self) -> K {
        match self {
            LocationError::Db(_) => K::Internal,
            LocationError::BadCode
            | LocationError::BadTaskId
            | LocationError::TextTooLong(_)
            | LocationError::BadAttributes(_)
            | LocationError::BatchTooLarge => K::BadArguments,
            LocationError::NotFound(_) => K::NotFound,
            LocationError::TooMany => K::LimitExceeded,
            LocationError::NotHolder { .. } => K::Conflict,
        }
    }
}

impl Kind for TaskVarsError {
    fn kind(&self) -> K {
        match self {
            TaskVarsError::Db(_) | TaskVarsError::Internal(_) => K::Internal,
            TaskVarsError::BadTaskId | TaskVarsError::BadName | TaskVarsError::TooLarge(_) => {
                K::BadArguments
            }
        }
    }
}

impl Kind for DataError {
    fn kind(&self) -> K {
        match self {
            DataError::Db(_) => K::Internal,
            DataError::BadKey | DataError::TooLarge(_) => K::BadArguments,
            DataError::TooManyKeys => K::LimitExceeded,
        }
    }
}

impl Kind for RegError {
    fn kind(&self) -> K {
        match self {
            RegError::RouteTaken { .. } | RegError::FunctionTaken { .. } => K::Conflict,
            RegError::Invalid(_) => K::BadArguments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vwed_hal::Exception;

    #[test]
    fn modbus_exceptions_stay_apart_from_transport_failures() {
        let ex = service_error(IoOpError::Exception(Exception::IllegalDataAddress));
        assert_eq!(ex.kind, K::DeviceException { code: 2 });
        let down = service_error(IoOpError::Hal(HalError::NotConnected {
            bus: "b".into(),
            reason: "refused".into(),
        }));
        assert_eq!(down.kind, K::Transport);
        let slow = service_error(IoOpError::Hal(HalError::Timeout(
            std::time::Duration::from_millis(5),
        )));
        assert_eq!(slow.kind, K::Timeout);
        let ro = service_error(IoOpError::ReadOnly("t".into()));
        assert_eq!(ro.kind, K::PermissionDenied);
        assert!(ro.message.contains("只读"), "{}", ro.message);
    }
}
