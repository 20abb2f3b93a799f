//! What an I/O operation can fail with, in words a script author or operator
//! can act on.

use vwed_hal::{Exception, HalError, WriteError};

#[derive(Debug, thiserror::Error)]
pub enum IoOpError {
    #[error("I/O 未配置: 在运行时配置中设置 io_config (设备配置文件) 后重启")]
    NotConfigured,
    #[error("未知的点位 {0}")]
    UnknownTag(String),
    #[error("点位 {0} 是只读的 (read-only), 拒绝写入")]
    ReadOnly(String),
    #[error("值无效: {0}")]
    BadValue(String),
    #[error("参数错误: {0}")]
    BadArgs(String),
    #[error("未知的设备或总线 '{name}' (已配置: {known})")]
    UnknownDevice { name: String, known: String },
    #[error("点位 {tag} 质量为 bad: {reason}")]
    BadQuality { tag: String, reason: String },
    #[error("设备拒绝请求: {0}")]
    Exception(Exception),
    #[error("{0}")]
    Hal(HalError),
    #[error("设备在 {0} ms 内没有应答")]
    Timeout(u64),
    #[error("未知的机器人 '{name}' (已配置: {known})")]
    UnknownRobot { name: String, known: String },
    #[error("{0}")]
    Robot(String),
}

impl From<WriteError> for IoOpError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::UnknownTag(t) => IoOpError::UnknownTag(t),
            WriteError::ReadOnly(t) => IoOpError::ReadOnly(t),
            WriteError::Codec { tag, source } => {
                IoOpError::BadValue(format!("点位 {tag}: {source}"))
            }
            WriteError::Exception { exception, .. } => IoOpError::Exception(exception),
            WriteError::Bus { source, .. } => IoOpError::Hal(source),
        }
    }
}

impl From<HalError> for IoOpError {
    fn from(e: HalError) -> Self {
        match e {
            HalError::InvalidRequest(m) => IoOpError::BadArgs(m),
            other => IoOpError::Hal(other),
        }
    }
}

impl IoOpError {
    /// HTTP status for the API.
    pub fn status(&self) -> u16 {
        match self {
            IoOpError::NotConfigured => 503,
            IoOpError::UnknownTag(_)
            | IoOpError::UnknownDevice { .. }
            | IoOpError::UnknownRobot { .. } => 404,
            IoOpError::ReadOnly(_) => 403,
            IoOpError::BadValue(_) | IoOpError::BadArgs(_) | IoOpError::Robot(_) => 400,
            IoOpError::BadQuality { .. }
            | IoOpError::Exception(_)
            | IoOpError::Hal(_)
            | IoOpError::Timeout(_) => 502,
        }
    }
}
