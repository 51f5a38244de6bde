//! `config.json` read by key, with errors that name the key and what was expected. A JSON
//! `null` counts as absent, as transformers treats it.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{HfError, Result};

pub struct HfConfig {
    pub path: PathBuf,
    pub json: Map<String, Value>,
}

impl HfConfig {
    pub fn read(dir: &Path) -> Result<HfConfig> {
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(HfError::at(dir, "not a Hugging Face model folder: config.json is missing"));
        }
        let text = std::fs::read_to_string(&path).map_err(|source| HfError::Io { path: path.clone(), source })?;
        let json = match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(HfError::at(&path, "expected a JSON object")),
            Err(e) => return Err(HfError::at(&path, format!("not JSON: {e}"))),
        };
        Ok(HfConfig { path, json })
    }

    pub fn bad(&self, message: impl Into<String>) -> HfError {
        HfError::at(&self.path, message)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.json.get(key).filter(|v| !v.is_null())
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| self.bad(format!("'{key}' is {v}, expected a non-negative integer"))),
        }
    }

    pub fn u64(&self, key: &str) -> Result<u64> {
        self.opt_u64(key)?.ok_or_else(|| self.bad(format!("'{key}' is missing")))
    }

    /// A count that GGUF stores as U32.
    pub fn u32(&self, key: &str) -> Result<u32> {
        let v = self.u64(key)?;
        u32::try_from(v).map_err(|_| self.bad(format!("'{key}' is {v}, too large")))
    }

    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.opt_u64(key)? {
            None => Ok(None),
            Some(v) => u32::try_from(v).map(Some).map_err(|_| self.bad(format!("'{key}' is {v}, too large"))),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| self.bad(format!("'{key}' is {v}, expected a number"))),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| self.bad(format!("'{key}' is {v}, expected true or false"))),
        }
    }

    /// `rope_scaling` (transformers' name), as an object, when set.
    pub fn rope_scaling(&self) -> Result<Option<&Map<String, Value>>> {
        match self.get("rope_scaling") {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.bad(format!("'rope_scaling' is {v}, expected an object"))),
        }
    }

    /// The rope scaling type: `rope_type`, or the older `type`.
    pub fn rope_scaling_type(&self) -> Result<Option<String>> {
        let Some(m) = self.rope_scaling()? else { return Ok(None) };
        match m.get("rope_type").or_else(|| m.get("type")) {
            Some(Value::String(s)) => Ok(Some(s.to_lowercase())),
            Some(v) => Err(self.bad(format!("'rope_scaling.rope_type' is {v}, expected a string"))),
            None => Err(self.bad("'rope_scaling' has no 'rope_type'")),
        }
    }

    /// A number inside `rope_scaling`.
    pub fn rope_f64(&self, key: &str) -> Result<Option<f64>> {
        let Some(m) = self.rope_scaling()? else { return Ok(None) };
        match m.get(key).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| self.bad(format!("'rope_scaling.{key}' is {v}, expected a number"))),
        }
    }

    /// A list of numbers inside `rope_scaling`.
    pub fn rope_list(&self, key: &str) -> Result<Option<Vec<f64>>> {
        let Some(m) = self.rope_scaling()? else { return Ok(None) };
        match m.get(key).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(Value::Array(items)) => items.iter().map(|v| v.as_f64().ok_or_else(|| self.bad(format!("'rope_scaling.{key}' holds {v}, expected numbers")))).collect::<Result<_>>().map(Some),
            Some(v) => Err(self.bad(format!("'rope_scaling.{key}' is {v}, expected a list of numbers"))),
        }
    }
}
