//! YAML text -> a serde schema. Owns the YAML library's errors: they become
//! [`Error::Syntax`] (not YAML at all) or [`Error::Shape`] (YAML, but not of
//! the schema's shape), with the line, column and field path of the fault.
//! Values are not checked here; each file's own crate does that.

use serde_path_to_error::Segment;
use serde_saphyr::{MessageFormatter, UserMessageFormatter};

use crate::error::{At, Error};

/// Deserializes `text` into the schema `T`; `file` names it in errors.
pub(crate) fn read<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T, Error> {
    let options = serde_saphyr::options! { with_snippet: false };
    let mut path = None;
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|err| {
            path = Some(field_path(err.path()));
            err.into_inner()
        })
    })
    .map_err(|err| to_error(&err, file, path.unwrap_or_default()))
}

fn to_error(err: &serde_saphyr::Error, file: &str, field: String) -> Error {
    // Positions are 1-based; an error without one points at the start.
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .filter(|&(line, _)| line > 0)
        .unwrap_or((1, 1));
    let at = At {
        file: file.to_string(),
        line,
        column,
        field,
    };
    let message = plain(UserMessageFormatter.format_message(err).into_owned());
    match err.without_snippet() {
        // Only the YAML parser reports external messages (no validator
        // feature is enabled): the text is not YAML.
        serde_saphyr::Error::ExternalMessage { .. } => Error::Syntax { at, message },
        _ => Error::Shape { at, message },
    }
}

/// The parser's message, with Rust's type names ("invalid u16") said as a
/// user writes the value instead.
fn plain(message: String) -> String {
    let range = match message.strip_prefix("invalid ") {
        Some("u8") => "0 to 255",
        Some("u16") => "0 to 65535",
        Some("u32") => "0 to 4294967295",
        Some("u64") => "0 to 18446744073709551615",
        Some("usize") => "0 or more",
        _ => return message,
    };
    format!("expected a whole number from {range}")
}

/// `listeners[0].routes[2].upstream`, as the user wrote the keys.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            // A `Spanned` value reads as a map {value, referenced, defined}:
            // its `value` key is not one the user wrote. No schema field is
            // named `value`.
            Segment::Map { key } | Segment::Enum { variant: key } if key != "value" => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            _ => {}
        }
    }
    out
}
