//! Free-text rules shared by the commands: trimmed, not empty, bounded.

use super::{CommandError, Result};

/// `value` trimmed; refused when empty or longer than `max` characters (`name`: the field
/// as clients spell it, for the message).
pub fn text(name: &str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(CommandError::bad(format!("{name} must not be empty")));
    }
    if v.chars().count() > max {
        return Err(CommandError::bad(format!(
            "{name} is longer than {max} characters"
        )));
    }
    Ok(v.to_string())
}

/// An optional [`text`]: blank counts as absent.
pub fn opt_text(name: &str, value: Option<String>, max: usize) -> Result<Option<String>> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| text(name, &v, max))
        .transpose()
}
