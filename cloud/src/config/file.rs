//! The TOML config file: its keys are the settings' names in either case
//! (anything else is refused by name and position), its values strings,
//! integers or booleans; positions are kept so that a bad value can be
//! pointed at (line and column).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// A value from the config file and where it is.
#[derive(Debug, Clone)]
pub(super) struct FileValue {
    pub(super) value: String,
    pub(super) line: usize,
    pub(super) column: usize,
}

/// The config file: values by setting name, and its path for messages.
#[derive(Debug, Default)]
pub(super) struct File {
    pub(super) path: PathBuf,
    pub(super) values: HashMap<&'static str, FileValue>,
}

/// Line and column (1-based, in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Reads the file at `path`. `known` names the setting a key stands for
/// (its canonical name), or `None` for a key that is no setting: the file
/// knows TOML and positions, the settings table knows names.
pub(super) fn read_file(
    path: &Path,
    known: impl Fn(&str) -> Option<&'static str>,
) -> Result<File, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::File(path.to_path_buf(), e.to_string()))?;
    let file_error = |message: String| ConfigError::File(path.to_path_buf(), message);
    // Parsed once for the positions of keys and values, once for the values.
    let spans = toml::de::DeTable::parse(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let (line, column) = line_column(&text, s.start);
                format!(" at line {line}, column {column}")
            })
            .unwrap_or_default();
        file_error(format!("not valid TOML{at}: {}", e.message().trim()))
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| file_error(e.message().into()))?;
    let mut values = HashMap::new();
    let mut errors = Vec::new();
    for (key, value) in spans.get_ref() {
        let name = key.get_ref().to_string();
        let (line, column) = line_column(&text, key.span().start);
        let Some(setting) = known(&name) else {
            errors.push(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key: name,
                line,
                column,
            });
            continue;
        };
        let (vline, vcolumn) = line_column(&text, value.span().start);
        let text_value = match table.get(&name) {
            Some(toml::Value::String(s)) => s.clone(),
            Some(toml::Value::Integer(i)) => i.to_string(),
            Some(toml::Value::Boolean(b)) => b.to_string(),
            other => {
                let kind = other.map(toml::Value::type_str).unwrap_or("nothing");
                errors.push(file_error(format!(
                    "{name} at line {vline}, column {vcolumn}: expected a string, number or boolean, got {kind}"
                )));
                continue;
            }
        };
        values.insert(
            setting,
            FileValue {
                value: text_value,
                line: vline,
                column: vcolumn,
            },
        );
    }
    match errors.len() {
        0 => Ok(File {
            path: path.to_path_buf(),
            values,
        }),
        1 => Err(errors.remove(0)),
        _ => Err(ConfigError::Several(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("ab\ncdé f", 0), (1, 1));
        assert_eq!(line_column("ab\ncdé f", 3), (2, 1));
        assert_eq!(line_column("ab\ncdé f", 8), (2, 5));
    }
}
