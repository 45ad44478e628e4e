//! A request's parameters as Stripe reads them: nested form fields whose
//! leaves are strings, checked for unknown names and typed on access.

use std::ops::Bound;

use serde_json::{Map, Value};

use super::ApiError;
use crate::form;

/// Bounds on the (created, sequence) keys of a listing.
pub type KeyRange = (Bound<(i64, u64)>, Bound<(i64, u64)>);

#[derive(Debug, Clone)]
pub struct Params {
    value: Value,
}

impl Params {
    /// A list's page size: `limit`, 1 to 100, else Stripe's 10.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.int("limit")? {
            None => Ok(10),
            Some(limit @ 1..=100) => Ok(limit as usize),
            Some(_) => Err(ApiError::invalid(
                "limit",
                "This value must be greater than or equal to 1 and less than or equal to 100.",
            )),
        }
    }

    pub fn parse(encoded: &str) -> Result<Params, ApiError> {
        let value =
            form::decode(encoded).map_err(|message| ApiError::invalid_request(&message, None))?;
        Ok(Params { value })
    }

    /// The decoded parameters, for the request log.
    pub fn as_json(&self) -> &Value {
        &self.value
    }

    /// Refuses any top-level parameter not in `allowed` (`expand` is always
    /// allowed), as Stripe does.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        if let Value::Object(map) = &self.value {
            for key in map.keys() {
                if key != "expand" && !allowed.contains(&key.as_str()) {
                    return Err(ApiError {
                        status: 400,
                        kind: "invalid_request_error",
                        code: Some("parameter_unknown"),
                        message: format!("Received unknown parameter: {key}"),
                        param: Some(key.clone()),
                        decline_code: None,
                    });
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.value.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.value
            .get(key)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
    }

    pub fn required_str(&self, key: &str) -> Result<&str, ApiError> {
        self.str(key).ok_or_else(|| ApiError::missing(key))
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        leaf_int(self.value.get(key), key)
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        leaf_bool(self.value.get(key), key)
    }

    /// `metadata[...]`: up to 50 keys of at most 40 characters, values of
    /// at most 500.
    pub fn metadata(&self) -> Result<Value, ApiError> {
        metadata(self.value.get("metadata"))
    }

    /// `created` as bounds on (created, sequence) keys.
    pub fn created_range(&self) -> Result<KeyRange, ApiError> {
        match self.value.get("created") {
            None => Ok((Bound::Unbounded, Bound::Unbounded)),
            Some(Value::String(_)) => {
                let at = self.int("created")?.unwrap_or(0);
                Ok((Bound::Included((at, 0)), Bound::Included((at, u64::MAX))))
            }
            Some(Value::Object(range)) => {
                let mut lower = Bound::Unbounded;
                let mut upper = Bound::Unbounded;
                for (op, value) in range {
                    let param = format!("created[{op}]");
                    let at = leaf_int(Some(value), &param)?.unwrap_or(0);
                    match op.as_str() {
                        "gte" => lower = Bound::Included((at, 0)),
                        "gt" => lower = Bound::Included((at.saturating_add(1), 0)),
                        "lte" => upper = Bound::Included((at, u64::MAX)),
                        "lt" => upper = Bound::Excluded((at, 0)),
                        _ => {
                            return Err(ApiError {
                                status: 400,
                                kind: "invalid_request_error",
                                code: Some("parameter_unknown"),
                                message: format!("Received unknown parameter: {param}"),
                                param: Some(param),
                                decline_code: None,
                            });
                        }
                    }
                }
                Ok((lower, upper))
            }
            Some(_) => Err(ApiError::invalid("created", "Invalid timestamp")),
        }
    }
}

pub fn leaf_int(value: Option<&Value>, param: &str) -> Result<Option<i64>, ApiError> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(param, &format!("Invalid integer: {text}"))),
        Some(_) => Err(ApiError::invalid(param, "Invalid integer")),
    }
}

pub fn leaf_bool(value: Option<&Value>, param: &str) -> Result<Option<bool>, ApiError> {
    match value.and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::invalid(
            param,
            &format!("Invalid boolean: {other}"),
        )),
    }
}

pub fn metadata(value: Option<&Value>) -> Result<Value, ApiError> {
    let Some(value) = value else {
        return Ok(Value::Object(Map::new()));
    };
    let Value::Object(map) = value else {
        // `metadata=` (empty) unsets all keys.
        return match value.as_str() {
            Some("") => Ok(Value::Object(Map::new())),
            _ => Err(ApiError::invalid("metadata", "Invalid hash")),
        };
    };
    if map.len() > 50 {
        return Err(ApiError::invalid(
            "metadata",
            "You can have up to 50 metadata keys",
        ));
    }
    let mut out = Map::new();
    for (key, value) in map {
        let Some(text) = value.as_str() else {
            return Err(ApiError::invalid(
                &format!("metadata[{key}]"),
                "Invalid string",
            ));
        };
        if key.chars().count() > 40 {
            return Err(ApiError::invalid(
                &format!("metadata[{key}]"),
                "Metadata keys can have up to 40 characters",
            ));
        }
        if text.chars().count() > 500 {
            return Err(ApiError::invalid(
                &format!("metadata[{key}]"),
                "Metadata values can have up to 500 characters",
            ));
        }
        if !text.is_empty() {
            out.insert(key.clone(), Value::String(text.to_owned()));
        }
    }
    Ok(Value::Object(out))
}

/// Refuses a key of the hash `name` that is not `allowed`, as Stripe
/// refuses unknown parameters at every depth.
pub fn only_keys(value: &Value, name: &str, allowed: &[&str]) -> Result<(), ApiError> {
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid(name, "Invalid hash"));
    };
    match fields.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(unknown) => Err(ApiError::invalid_request(
            &format!("Received unknown parameter: {name}[{unknown}]"),
            Some(&format!("{name}[{unknown}]")),
        )),
        None => Ok(()),
    }
}

/// The `expand[]` paths of a request, without the `data.` of a list; a
/// path deeper than Stripe's four levels is refused as Stripe refuses it.
pub fn expansions(params: &Params, list: bool) -> Result<Vec<String>, ApiError> {
    let paths: Vec<String> = match params.get("expand") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        Some(_) => return Err(ApiError::invalid("expand", "Invalid array")),
    };
    let mut found = Vec::new();
    for path in paths {
        if path.split('.').count() > 4 {
            return Err(ApiError::invalid_request(
                &format!("You cannot expand more than 4 levels of a property. Property: {path}"),
                Some("expand"),
            ));
        }
        let inner = if list {
            match path.strip_prefix("data.") {
                Some(inner) => inner.to_owned(),
                None => {
                    return Err(ApiError::invalid_request(
                        &format!(
                            "This property cannot be expanded ({path}). You may want to try expanding 'data.{path}' instead."
                        ),
                        Some("expand"),
                    ));
                }
            }
        } else {
            path
        };
        found.push(inner);
    }
    Ok(found)
}
