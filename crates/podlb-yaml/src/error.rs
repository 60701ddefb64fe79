//! The one error type of `podlb-yaml`, and [`At`], the place in the file
//! every error points to. Each message reads `file:line:column: field: what`.

use std::fmt;

/// Where an error is: the file, the 1-based line and column of the value (or
/// key) at fault, and the field path such as `upstreams[0].connect_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    /// The file name as given to [`crate::read`] or [`crate::file_text`].
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// The field path; empty for the top level of the file.
    pub field: String,
}

impl At {
    /// Where `value` is in `file`, under the field path `field`.
    pub fn of<T>(file: &str, value: &serde_saphyr::Spanned<T>, field: impl Into<String>) -> At {
        At {
            file: file.to_string(),
            line: value.referenced.line(),
            column: value.referenced.column(),
            field: field.into(),
        }
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        Ok(())
    }
}

/// Why a YAML file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The path as given.
        file: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The text is not well-formed YAML.
    #[error("{at}: invalid YAML: {message}")]
    Syntax {
        /// Where the parser stopped.
        at: At,
        /// The parser's explanation.
        message: String,
    },
    /// The YAML does not have the shape of the file's schema: an unknown or
    /// missing field, a duplicate key, or a value of the wrong type.
    #[error("{at}: {message}")]
    Shape {
        /// The field at fault.
        at: At,
        /// What is wrong, as the deserializer says it.
        message: String,
    },
    /// A value the file's own checks reject (the control plane's catalog
    /// reports its faults so).
    #[error("{at}: {message}")]
    Invalid {
        /// The value at fault.
        at: At,
        /// What is wrong and what to write instead.
        message: String,
    },
}
