//! Reading a results file: JSON values addressed by a dotted path, so that
//! a missing or mistyped field is reported with the file and the path.

use serde_json::Value;

use crate::error::ChartError;

/// One value of a results file, with where it came from.
#[derive(Clone)]
pub struct Node<'a> {
    file: &'a str,
    path: String,
    value: &'a Value,
}

/// Parses `text` as JSON; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Value, ChartError> {
    serde_json::from_str(text).map_err(|error| ChartError::Json { file: file.to_string(), error })
}

impl<'a> Node<'a> {
    /// The document's root.
    pub fn root(file: &'a str, value: &'a Value) -> Self {
        Node { file, path: String::new(), value }
    }

    /// The file's name, for errors and captions.
    pub fn file(&self) -> &'a str {
        self.file
    }

    /// The dotted path of this value.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The field `key`, which must be present and not null.
    pub fn get(&self, key: &str) -> Result<Node<'a>, ChartError> {
        self.opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// The field `key`, or None when it is absent or null. Errors only when
    /// this value is not an object.
    pub fn opt(&self, key: &str) -> Result<Option<Node<'a>>, ChartError> {
        let obj = self.value.as_object().ok_or_else(|| self.wrong("an object"))?;
        Ok(obj.get(key).filter(|v| !v.is_null()).map(|value| Node {
            file: self.file,
            path: self.child_path(key),
            value,
        }))
    }

    /// The field `key`, which must be present; None when it is null (a
    /// measurement that did not give a value).
    pub fn nullable(&self, key: &str) -> Result<Option<Node<'a>>, ChartError> {
        let obj = self.value.as_object().ok_or_else(|| self.wrong("an object"))?;
        if !obj.contains_key(key) {
            return Err(self.missing(key));
        }
        self.opt(key)
    }

    /// This value as a finite number.
    pub fn num(&self) -> Result<f64, ChartError> {
        self.value.as_f64().filter(|x| x.is_finite()).ok_or_else(|| self.wrong("a finite number"))
    }

    /// This value as a string.
    pub fn str(&self) -> Result<&'a str, ChartError> {
        self.value.as_str().ok_or_else(|| self.wrong("a string"))
    }

    /// This value as a boolean.
    pub fn bool(&self) -> Result<bool, ChartError> {
        self.value.as_bool().ok_or_else(|| self.wrong("true or false"))
    }

    /// The elements of this array.
    pub fn items(&self) -> Result<Vec<Node<'a>>, ChartError> {
        let arr = self.value.as_array().ok_or_else(|| self.wrong("an array"))?;
        Ok(arr
            .iter()
            .enumerate()
            .map(|(i, value)| Node { file: self.file, path: self.child_path(&i.to_string()), value })
            .collect())
    }

    /// The fields of this object, in the file's order.
    pub fn fields(&self) -> Result<Vec<(&'a str, Node<'a>)>, ChartError> {
        let obj = self.value.as_object().ok_or_else(|| self.wrong("an object"))?;
        Ok(obj
            .iter()
            .map(|(k, value)| (k.as_str(), Node { file: self.file, path: self.child_path(k), value }))
            .collect())
    }

    /// Whether this value is an array.
    pub fn is_array(&self) -> bool {
        self.value.is_array()
    }

    /// An error about this value: `msg` says what is wrong with it.
    pub fn invalid(&self, msg: impl std::fmt::Display) -> ChartError {
        ChartError::Invalid { file: self.file.to_string(), msg: format!("`{}`: {msg}", self.path) }
    }

    fn missing(&self, key: &str) -> ChartError {
        ChartError::Missing { file: self.file.to_string(), path: self.child_path(key) }
    }

    fn wrong(&self, want: &'static str) -> ChartError {
        let mut found = self.value.to_string();
        if found.len() > 40 {
            let cut = (0..=40).rev().find(|&i| found.is_char_boundary(i)).unwrap_or(0);
            found.truncate(cut);
            found.push_str("...");
        }
        let path = if self.path.is_empty() { "(the document)".to_string() } else { self.path.clone() };
        ChartError::Type { file: self.file.to_string(), path, want, found }
    }
}
