//! Load errors that point at the file, line and field to fix.

use std::fmt;
use std::ops::Range;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem has no single location.
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending field, e.g. `point[3].address`.
    pub field: String,
    pub message: String,
}

/// All problems found in one load, so a user fixes them in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("unknown board profile '{name}' (built-in: {available})")]
    UnknownBoard { name: String, available: String },
    #[error("{0}")]
    Invalid(ConfigErrors),
}

impl LoadError {
    /// The individual problems, if this is a validation failure.
    pub fn problems(&self) -> &[ConfigError] {
        match self {
            Self::Invalid(errors) => &errors.0,
            _ => &[],
        }
    }
}

/// Maps byte offsets of one file to line and column.
pub(crate) struct Source<'a> {
    pub file: &'a str,
    text: &'a str,
}

impl<'a> Source<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Self { file, text }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }

    pub fn error(
        &self,
        span: Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = self.position(span.start);
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// Turns a parse error (syntax, wrong type, unknown or missing field)
    /// into a located error.
    pub fn parse_error(&self, err: &toml::de::Error) -> ConfigError {
        let message = err.message().trim().to_owned();
        let field = backticked(&message).unwrap_or_default();
        match err.span() {
            Some(span) => self.error(span, &field, message),
            None => ConfigError {
                file: self.file.to_owned(),
                line: 0,
                column: 0,
                field,
                message,
            },
        }
    }
}

/// serde names the field in backticks ("unknown field `adress`").
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message.get(start..)?.find('`')?;
    message.get(start..start + len).map(str::to_owned)
}
