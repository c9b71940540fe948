//! The CNI protocol as this plugin speaks it: versions, the error object and
//! its well-known codes, and the result of `ADD` and `VERSION`.
//!
//! Field names follow the CNI specification 1.1.0 (`SPEC.md`, sections
//! "Result Types" and "Error"); a 0.4.0 result differs only in carrying a
//! `version` in each `ips` entry and no `mtu` on interfaces.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The newest spec version this plugin speaks (and the default for output
/// that has no input version, such as an error before the config was read).
pub const LATEST_VERSION: &str = "1.1.0";

/// Every spec version this plugin accepts in `cniVersion`.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// Whether `v` is one of [`SUPPORTED_VERSIONS`].
pub fn is_supported(v: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&v)
}

/// Well-known error codes (spec section "Error").
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (`CNI_COMMAND`, `CNI_CONTAINERID`...).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure (reading the configuration from stdin).
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content (the configuration is not JSON).
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later: a transient condition (here: the daemon does not answer).
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot serve ADD now.
    pub const NOT_AVAILABLE: u32 = 50;
    /// Anything else (plugin-specific range, 100 and above).
    pub const OTHER: u32 = 999;
}

/// A CNI error: printed on stdout as the spec's error object, with a
/// non-zero exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    /// Short, fixed text for the code.
    pub msg: String,
    /// What exactly went wrong and what to do about it.
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError { code, msg: msg.into(), details: details.into() }
    }

    pub fn incompatible_version(details: impl Into<String>) -> Self {
        Self::new(code::INCOMPATIBLE_VERSION, "Incompatible CNI version", details)
    }

    pub fn invalid_env(details: impl Into<String>) -> Self {
        Self::new(code::INVALID_ENV, "Invalid necessary environment variables", details)
    }

    pub fn io(details: impl Into<String>) -> Self {
        Self::new(code::IO_FAILURE, "I/O failure", details)
    }

    pub fn decode(details: impl Into<String>) -> Self {
        Self::new(code::DECODE, "Failed to decode content", details)
    }

    pub fn invalid_config(details: impl Into<String>) -> Self {
        Self::new(code::INVALID_CONFIG, "Invalid network config", details)
    }

    pub fn try_again(details: impl Into<String>) -> Self {
        Self::new(code::TRY_AGAIN_LATER, "Try again later", details)
    }

    pub fn not_available(details: impl Into<String>) -> Self {
        Self::new(code::NOT_AVAILABLE, "Plugin not available", details)
    }

    pub fn other(msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self::new(code::OTHER, msg, details)
    }

    /// The error object for output, in `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> ErrorJson {
        ErrorJson {
            cni_version: cni_version.to_owned(),
            code: self.code,
            msg: self.msg.clone(),
            details: self.details.clone(),
        }
    }

    /// The same error with `context: ` before its details.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.details = format!("{context}: {}", self.details);
        self
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {}): {}", self.msg, self.code, self.details)
    }
}

impl std::error::Error for CniError {}

/// The spec's error object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorJson {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

/// The answer to `VERSION`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResult {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

impl VersionResult {
    /// `VERSION`'s output: the input's version when it is one we speak,
    /// else [`LATEST_VERSION`].
    pub fn new(input_version: Option<&str>) -> Self {
        let v = input_version.filter(|v| is_supported(v)).unwrap_or(LATEST_VERSION);
        VersionResult {
            cni_version: v.to_owned(),
            supported_versions: SUPPORTED_VERSIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The result of a successful `ADD`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResult {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

/// One interface the plugin made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Since 1.1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path, for the container's interface; absent on the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// An address given to an interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `"4"` or `"6"`: in 0.4.0 results only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Address with prefix length, e.g. `10.32.0.5/12`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route the plugin added in the container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// Resolver settings for the container (runtimes may or may not apply them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_none() && self.search.is_empty() && self.options.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn version_answer_echoes_a_supported_input_version() {
        let v = serde_json::to_value(VersionResult::new(Some("1.0.0"))).unwrap();
        assert_eq!(v, json!({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}));
        let v = serde_json::to_value(VersionResult::new(Some("0.1.0"))).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        let v = serde_json::to_value(VersionResult::new(None)).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        let supported: Vec<&str> =
            v["supportedVersions"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        assert!(supported.contains(&"1.0.0") && supported.contains(&"1.1.0"));
    }

    #[test]
    fn error_object_has_the_spec_fields() {
        let e = CniError::invalid_env("CNI_IFNAME is not set");
        let v = serde_json::to_value(e.to_json("1.1.0")).unwrap();
        assert_eq!(
            v,
            json!({"cniVersion": "1.1.0", "code": 4, "msg": "Invalid necessary environment variables",
                   "details": "CNI_IFNAME is not set"})
        );
        assert_eq!(CniError::invalid_config("x").code, 7);
        assert_eq!(CniError::decode("x").code, 6);
        assert_eq!(CniError::try_again("x").code, 11);
        assert_eq!(CniError::not_available("x").code, 50);
        assert_eq!(CniError::incompatible_version("x").code, 1);
    }

    #[test]
    fn empty_optional_fields_are_left_out() {
        let r = AddResult {
            cni_version: "1.1.0".into(),
            interfaces: vec![Interface {
                name: "vwv01234567".into(),
                mac: "02:00:00:00:00:01".into(),
                ..Default::default()
            }],
            ips: vec![IpConfig { address: "10.32.0.5/12".into(), interface: Some(0), ..Default::default() }],
            ..Default::default()
        };
        let v: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"cniVersion": "1.1.0",
                   "interfaces": [{"name": "vwv01234567", "mac": "02:00:00:00:00:01"}],
                   "ips": [{"address": "10.32.0.5/12", "interface": 0}]})
        );
    }
}
