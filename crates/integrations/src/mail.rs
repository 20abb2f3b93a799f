//! `VWED.mail`: plain-text mail over SMTP, optionally with one attachment.
//!
//! Attachments come only from `<data-dir>/attachments/` (scripts get the absolute
//! path from `VWED.mail.attachment_dir()`), so a script cannot mail out the
//! database or anything else on the device by naming its path. With
//! `smtp_starttls`, the connection is upgraded with STARTTLS through the
//! runtime's rustls stack (system roots and `tls_ca_file`) and refused if the
//! server does not offer it; without, plain SMTP for a trusted network.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use vwed_ipc::MailMessage;

use crate::Setup;

pub const ATTACHMENT_DIR: &str = "attachments";
pub const MAX_RECIPIENTS: usize = 50;
pub const MAX_SUBJECT_BYTES: usize = 1_000;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("邮件服务器未配置 (smtp_host)")]
    NotConfigured,
    #[error("发件人未配置 (smtp_from)")]
    NoSender,
    #[error("SMTP TLS 配置错误: {0}")]
    Tls(String),
    #[error("邮件地址无效: {0}")]
    BadAddress(String),
    #[error("收件人不能为空, 且最多 {MAX_RECIPIENTS} 个")]
    Recipients,
    #[error("邮件主题过长 (上限 {MAX_SUBJECT_BYTES} 字节)")]
    SubjectTooLong,
    #[error("邮件正文过大 (上限 {MAX_BODY_BYTES} 字节)")]
    BodyTooLarge,
    #[error(
        "附件路径 {0} 无效: 只能是 {ATTACHMENT_DIR}/ 目录下的文件 (见 VWED.mail.attachment_dir())"
    )]
    BadAttachmentPath(String),
    #[error("附件 {path} 过大: {size} 字节, 上限 {max} 字节 (mail_max_attachment_bytes)")]
    AttachmentTooLarge { path: String, size: u64, max: u64 },
    #[error("附件读取失败 {0}: {1}")]
    AttachmentIo(String, std::io::Error),
    #[error("无法创建附件目录 {0}: {1}")]
    AttachmentDir(String, std::io::Error),
    #[error("邮件构建失败: {0}")]
    Build(String),
    #[error("邮件发送失败: {0}")]
    Send(String),
    #[error("邮件发送超时 ({0} ms, smtp_timeout_ms)")]
    Timeout(u64),
}

pub fn attachment_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(ATTACHMENT_DIR)
}

/// `VWED.mail.attachment_dir()`: the directory, created if missing, as an
/// absolute path.
pub async fn ensure_attachment_dir(cfg: &Setup) -> Result<Value, MailError> {
    let dir = attachment_dir(&cfg.data_dir);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| MailError::AttachmentDir(dir.display().to_string(), e))?;
    let dir = tokio::fs::canonicalize(&dir).await.unwrap_or(dir);
    Ok(Value::String(dir.to_string_lossy().into_owned()))
}

/// Resolves a script-given path to a regular file inside the attachment dir.
pub fn resolve_attachment(dir: &Path, raw: &str) -> Result<PathBuf, MailError> {
    let bad = || MailError::BadAttachmentPath(raw.to_string());
    let p = Path::new(raw);
    if raw.is_empty()
        || raw.contains('\0')
        || p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(bad());
    }
    let base = std::fs::canonicalize(dir).map_err(|_| bad())?;
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    };
    // canonicalize resolves symlinks, so a link pointing out of the dir is caught.
    let real =
        std::fs::canonicalize(&joined).map_err(|e| MailError::AttachmentIo(raw.to_string(), e))?;
    if !real.starts_with(&base) || real == base {
        return Err(bad());
    }
    Ok(real)
}

fn mailbox(s: &str) -> Result<Mailbox, MailError> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| MailError::BadAddress(format!("{s}: {e}")))
}

/// Each entry may itself list several addresses, separated by `,` or `;`.
fn recipients(to: &[String]) -> Result<Vec<Mailbox>, MailError> {
    let list: Vec<&str> = to
        .iter()
        .flat_map(|s| s.split([',', ';']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() || list.len() > MAX_RECIPIENTS {
        return Err(MailError::Recipients);
    }
    list.iter().map(|s| mailbox(s)).collect()
}

/// Builds and sends one message; returns `{to, subject, attachment?}`.
pub async fn send(cfg: &Setup, m: MailMessage) -> Result<Value, MailError> {
    let from = sender(cfg)?;
    let to = recipients(&m.to)?;
    if m.subject.len() > MAX_SUBJECT_BYTES {
        return Err(MailError::SubjectTooLong);
    }
    if m.body.len() > MAX_BODY_BYTES {
        return Err(MailError::BodyTooLarge);
    }
    let attachment = match &m.attachment_path {
        Some(raw) => Some(read_attachment(cfg, raw).await?),
        None => None,
    };
    let attached = attachment.as_ref().map(|(n, _)| n.clone());
    let msg = build(from, &to, &m.subject, m.body, attachment)?;
    deliver(cfg, msg).await?;
    Ok(serde_json::json!({
        "to": to.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "subject": m.subject,
        "attachment": attached,
    }))
}

/// The configured sender, once the SMTP settings are known to be usable.
fn sender(cfg: &Setup) -> Result<Mailbox, MailError> {
    if cfg.settings.smtp_host.trim().is_empty() {
        return Err(MailError::NotConfigured);
    }
    if cfg.settings.smtp_from.trim().is_empty() {
        return Err(MailError::NoSender);
    }
    mailbox(&cfg.settings.smtp_from)
}

/// The attachment's file name and bytes, checked against the size limit.
async fn read_attachment(cfg: &Setup, raw: &str) -> Result<(String, Vec<u8>), MailError> {
    let path = resolve_attachment(&attachment_dir(&cfg.data_dir), raw)?;
    let max = cfg.settings.mail_max_attachment_bytes;
    let too_large = |size: u64| MailError::AttachmentTooLarge {
        path: raw.to_string(),
        size,
        max,
    };
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|e| MailError::AttachmentIo(raw.to_string(), e))?;
    if !meta.is_file() {
        return Err(MailError::BadAttachmentPath(raw.to_string()));
    }
    if meta.len() > max {
        return Err(too_large(meta.len()));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| MailError::AttachmentIo(raw.to_string(), e))?;
    // The file may have grown between the size check and the read.
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    let name = path.file_name().map_or_else(
        || "attachment".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok((name, bytes))
}

fn build(
    from: Mailbox,
    to: &[Mailbox],
    subject: &str,
    body: String,
    attachment: Option<(String, Vec<u8>)>,
) -> Result<Message, MailError> {
    let mut b = Message::builder().from(from).subject(subject);
    for t in to {
        b = b.to(t.clone());
    }
    match attachment {
        None => b.header(ContentType::TEXT_PLAIN).body(body),
        Some((name, bytes)) => {
            let octet = ContentType::parse("application/octet-stream")
                .map_err(|e| MailError::Build(e.to_string()))?;
            b.multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(body))
                    .singlepart(Attachment::new(name).body(bytes, octet)),
            )
        }
    }
    .map_err(|e| MailError::Build(e.to_string()))
}

async fn deliver(cfg: &Setup, msg: Message) -> Result<(), MailError> {
    let host = cfg.settings.smtp_host.trim();
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(cfg.settings.smtp_port)
        .timeout(Some(Duration::from_millis(
            cfg.settings.smtp_timeout_ms.max(1),
        )));
    if cfg.settings.smtp_starttls {
        let tls = smtp_tls(&cfg.tls, host).map_err(|e| MailError::Tls(e.to_string()))?;
        t = t.tls(Tls::Required(tls));
    }
    if !cfg.settings.smtp_username.is_empty() {
        t = t.credentials(Credentials::new(
            cfg.settings.smtp_username.clone(),
            cfg.settings.smtp_password.clone(),
        ));
    }
    let transport = t.build();
    // lettre's timeout covers single socket operations; this bounds the whole
    // exchange, so a server that accepts and then stalls cannot hold a script.
    let limit = cfg.settings.smtp_timeout_ms.max(1);
    tokio::time::timeout(Duration::from_millis(limit), transport.send(msg))
        .await
        .map_err(|_| MailError::Timeout(limit))?
        .map_err(|e| MailError::Send(e.to_string()))?;
    Ok(())
}

/// TLS parameters for SMTP STARTTLS to `host`: system roots plus `tls_ca_file`.
fn smtp_tls(
    cfg: &vwed_tls::TlsSettings,
    host: &str,
) -> Result<lettre::transport::smtp::client::TlsParameters, vwed_tls::TlsError> {
    use lettre::transport::smtp::client::{Certificate, TlsParameters};
    let mut b = TlsParameters::builder(host.to_string());
    for der in vwed_tls::extra_roots(cfg)? {
        let c = Certificate::from_der(der.to_vec())
            .map_err(|e| vwed_tls::TlsError::Read(cfg.tls_ca_file.clone(), e.to_string()))?;
        b = b.add_root_certificate(c);
    }
    b.build()
        .map_err(|e| vwed_tls::TlsError::Generate(format!("SMTP TLS: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_paths_stay_inside() {
        let root = std::env::temp_dir().join(format!(
            "vwed-mail-{}-{}",
            std::process::id(),
            vwed_base::clock::unix_ms()
        ));
        let dir = root.join(ATTACHMENT_DIR);
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        std::fs::write(dir.join("sub/r.txt"), "x").expect("write");
        std::fs::write(root.join("secret"), "x").expect("write");
        std::os::unix::fs::symlink(root.join("secret"), dir.join("link")).expect("link");
        assert!(resolve_attachment(&dir, "sub/r.txt").is_ok());
        let abs = dir.join("sub/r.txt");
        assert!(resolve_attachment(&dir, &abs.to_string_lossy()).is_ok());
        for bad in ["../secret", "sub/../../secret", "", "./sub/r.txt"] {
            assert!(
                matches!(
                    resolve_attachment(&dir, bad),
                    Err(MailError::BadAttachmentPath(_))
                ),
                "{bad}"
            );
        }
        assert!(resolve_attachment(&dir, "link").is_err());
        assert!(resolve_attachment(&dir, &root.join("secret").to_string_lossy()).is_err());
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn recipient_lists() {
        assert_eq!(
            recipients(&["a@x.cn, b@y.cn".into()]).expect("two").len(),
            2
        );
        assert!(matches!(recipients(&[]), Err(MailError::Recipients)));
        assert!(matches!(
            recipients(&["not an address".into()]),
            Err(MailError::BadAddress(_))
        ));
    }

    #[test]
    fn smtp_tls_parameters_take_the_extra_roots() {
        let d = std::env::temp_dir().join(format!("vwed-smtp-tls-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        let tls = vwed_tls::server(
            &vwed_tls::TlsSettings {
                tls: true,
                ..Default::default()
            },
            &d,
            &[],
        )
        .expect("tls")
        .expect("on");
        let cfg = vwed_tls::TlsSettings {
            tls_ca_file: tls.cert_path.display().to_string(),
            ..vwed_tls::TlsSettings::default()
        };
        smtp_tls(&cfg, "mail.example").expect("parameters");
        let missing = vwed_tls::TlsSettings {
            tls_ca_file: d.join("nope.pem").display().to_string(),
            ..vwed_tls::TlsSettings::default()
        };
        assert!(smtp_tls(&missing, "mail.example").is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
