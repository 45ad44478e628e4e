//! Checkout's custom fields (`custom_fields`) as Stripe documents them
//! ("Add custom fields" and the API reference of the pinned version): at
//! most three; each with a unique alphanumeric `key` of up to 200
//! characters, a `label` of type `custom` of up to 50, a `type` of
//! `text`, `numeric` or `dropdown`, `optional` (false by default); text
//! and numeric fields take `minimum_length` and `maximum_length` (1 to
//! 255, the minimum not above the maximum); a dropdown takes 1 to 200
//! `options`, each a `label` of up to 100 characters and a unique
//! alphanumeric `value` of up to 100. The buyer's answers come back on the
//! session as each field's `text.value`, `numeric.value` (digits) or
//! `dropdown.value`. The wording of refusals Stripe's pages do not give is
//! the sandbox's.

use serde_json::{Value, json};

use super::ApiError;
use super::params::{leaf_bool, leaf_int, only_keys};

/// Stripe's limits.
const MAX_FIELDS: usize = 3;
const MAX_KEY: usize = 200;
const MAX_LABEL: usize = 50;
const MAX_LENGTH: i64 = 255;
const MAX_OPTIONS: usize = 200;
const MAX_OPTION: usize = 100;

fn alphanumeric(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The `custom_fields` of a new session or payment link, as its answer
/// shows them (no values yet); an empty list when none were given.
pub fn parse(given: Option<&Value>) -> Result<Value, ApiError> {
    let items: Vec<&Value> = match given {
        None => return Ok(json!([])),
        Some(Value::String(empty)) if empty.is_empty() => return Ok(json!([])),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(indexed)) => indexed.values().collect(),
        Some(_) => return Err(ApiError::invalid("custom_fields", "Invalid array")),
    };
    if items.len() > MAX_FIELDS {
        return Err(ApiError::invalid(
            "custom_fields",
            &format!("You can add up to {MAX_FIELDS} custom fields."),
        ));
    }
    let mut fields = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let name = format!("custom_fields[{index}]");
        only_keys(
            item,
            &name,
            &[
                "key", "label", "type", "optional", "text", "numeric", "dropdown",
            ],
        )?;
        let key = item["key"]
            .as_str()
            .ok_or_else(|| ApiError::missing(&format!("{name}[key]")))?;
        if !alphanumeric(key) || key.len() > MAX_KEY {
            return Err(ApiError::invalid(
                &format!("{name}[key]"),
                "A custom field's key must be alphanumeric and at most 200 characters.",
            ));
        }
        if keys.iter().any(|known| known == key) {
            return Err(ApiError::invalid(
                &format!("{name}[key]"),
                "Each custom field must have a unique key.",
            ));
        }
        keys.push(key.to_owned());
        let label = &item["label"];
        only_keys(label, &format!("{name}[label]"), &["type", "custom"])?;
        if label["type"] != "custom" {
            return Err(ApiError::invalid(
                &format!("{name}[label][type]"),
                "Invalid label type: must be custom.",
            ));
        }
        let custom = label["custom"]
            .as_str()
            .ok_or_else(|| ApiError::missing(&format!("{name}[label][custom]")))?;
        if custom.is_empty() || custom.chars().count() > MAX_LABEL {
            return Err(ApiError::invalid(
                &format!("{name}[label][custom]"),
                "A custom field's label must be 1 to 50 characters.",
            ));
        }
        let optional =
            leaf_bool(item.get("optional"), &format!("{name}[optional]"))?.unwrap_or(false);
        let kind = item["type"]
            .as_str()
            .ok_or_else(|| ApiError::missing(&format!("{name}[type]")))?;
        // Only the field's own kind is present (Stripe's schema has the
        // others neither null nor there).
        let mut field = json!({
            "key": key,
            "label": {"custom": custom, "type": "custom"},
            "optional": optional,
            "type": kind,
        });
        for other in ["text", "numeric", "dropdown"] {
            if other != kind && item.get(other).is_some() {
                return Err(ApiError::invalid(
                    &format!("{name}[{other}]"),
                    &format!("{name}[{other}] can only be set for a field of type {other}."),
                ));
            }
        }
        match kind {
            "text" | "numeric" => {
                let lengths = item.get(kind).unwrap_or(&Value::Null);
                let inner = format!("{name}[{kind}]");
                if lengths.is_object() {
                    only_keys(lengths, &inner, &["minimum_length", "maximum_length"])?;
                }
                let minimum = leaf_int(
                    lengths.get("minimum_length"),
                    &format!("{inner}[minimum_length]"),
                )?;
                let maximum = leaf_int(
                    lengths.get("maximum_length"),
                    &format!("{inner}[maximum_length]"),
                )?;
                for (which, value) in [("minimum_length", minimum), ("maximum_length", maximum)] {
                    if value.is_some_and(|value| !(1..=MAX_LENGTH).contains(&value)) {
                        return Err(ApiError::invalid(
                            &format!("{inner}[{which}]"),
                            "This value must be between 1 and 255.",
                        ));
                    }
                }
                if let (Some(minimum), Some(maximum)) = (minimum, maximum)
                    && minimum > maximum
                {
                    return Err(ApiError::invalid(
                        &format!("{inner}[minimum_length]"),
                        "minimum_length must be less than or equal to maximum_length.",
                    ));
                }
                field[kind] = json!({
                    "maximum_length": maximum,
                    "minimum_length": minimum,
                    "value": null,
                });
            }
            "dropdown" => {
                let inner = format!("{name}[dropdown]");
                let dropdown = item
                    .get("dropdown")
                    .ok_or_else(|| ApiError::missing(&inner))?;
                only_keys(dropdown, &inner, &["options"])?;
                let options: Vec<&Value> = match &dropdown["options"] {
                    Value::Array(items) => items.iter().collect(),
                    Value::Object(indexed) => indexed.values().collect(),
                    _ => return Err(ApiError::missing(&format!("{inner}[options]"))),
                };
                if options.is_empty() || options.len() > MAX_OPTIONS {
                    return Err(ApiError::invalid(
                        &format!("{inner}[options]"),
                        "A dropdown takes 1 to 200 options.",
                    ));
                }
                let mut values: Vec<&str> = Vec::new();
                let mut shown = Vec::new();
                for (at, option) in options.into_iter().enumerate() {
                    let option_name = format!("{inner}[options][{at}]");
                    only_keys(option, &option_name, &["label", "value"])?;
                    let (Some(label), Some(value)) =
                        (option["label"].as_str(), option["value"].as_str())
                    else {
                        return Err(ApiError::missing(&format!("{option_name}[value]")));
                    };
                    if label.is_empty() || label.chars().count() > MAX_OPTION {
                        return Err(ApiError::invalid(
                            &format!("{option_name}[label]"),
                            "An option's label must be 1 to 100 characters.",
                        ));
                    }
                    if !alphanumeric(value) || value.len() > MAX_OPTION || values.contains(&value) {
                        return Err(ApiError::invalid(
                            &format!("{option_name}[value]"),
                            "An option's value must be unique, alphanumeric and at most 100 characters.",
                        ));
                    }
                    values.push(value);
                    shown.push(json!({"label": label, "value": value}));
                }
                field["dropdown"] = json!({"options": shown, "value": null});
            }
            other => {
                return Err(ApiError::invalid(
                    &format!("{name}[type]"),
                    &format!("Invalid type: must be one of dropdown, numeric or text ({other})."),
                ));
            }
        }
        fields.push(field);
    }
    Ok(Value::Array(fields))
}

/// `fields` as an object shows them: a session's with each answer
/// (`value`, null until given), a payment link's without (its schema has
/// none).
pub fn shown_on(fields: &Value, session: bool) -> Value {
    let mut fields = fields.clone();
    for field in fields.as_array_mut().into_iter().flatten() {
        for kind in ["text", "numeric", "dropdown"] {
            if let Some(inner) = field.get_mut(kind).and_then(Value::as_object_mut) {
                match session {
                    true => {
                        inner.entry("value").or_insert(Value::Null);
                    }
                    false => {
                        inner.remove("value");
                    }
                }
            }
        }
    }
    fields
}

/// The session's fields with the buyer's answers (`answer(key)`, empty when
/// not given), checked as the payment page checks them.
pub fn answered(fields: &Value, answer: impl Fn(&str) -> String) -> Result<Value, ApiError> {
    let mut fields = fields.clone();
    let Some(items) = fields.as_array_mut() else {
        return Ok(fields);
    };
    for field in items.iter_mut() {
        let key = field["key"].as_str().unwrap_or_default().to_owned();
        let label = field["label"]["custom"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let kind = field["type"].as_str().unwrap_or_default().to_owned();
        let value = answer(&key).trim().to_owned();
        let param = format!("custom_fields[{key}]");
        if value.is_empty() {
            if field["optional"] == json!(true) {
                continue;
            }
            return Err(ApiError::invalid(
                &param,
                &format!("{label}: this field is required."),
            ));
        }
        match kind.as_str() {
            "text" | "numeric" => {
                if kind == "numeric" && !value.chars().all(|c| c.is_ascii_digit()) {
                    return Err(ApiError::invalid(
                        &param,
                        &format!("{label}: enter digits only."),
                    ));
                }
                let length = value.chars().count() as i64;
                let minimum = field[&kind]["minimum_length"].as_i64().unwrap_or(1);
                let maximum = field[&kind]["maximum_length"]
                    .as_i64()
                    .unwrap_or(MAX_LENGTH);
                if length < minimum || length > maximum {
                    return Err(ApiError::invalid(
                        &param,
                        &format!("{label}: enter {minimum} to {maximum} characters."),
                    ));
                }
                field[&kind]["value"] = json!(value);
            }
            _ => {
                let known = field["dropdown"]["options"]
                    .as_array()
                    .is_some_and(|options| {
                        options
                            .iter()
                            .any(|option| option["value"] == value.as_str())
                    });
                if !known {
                    return Err(ApiError::invalid(
                        &param,
                        &format!("{label}: choose one of the options."),
                    ));
                }
                field["dropdown"]["value"] = json!(value);
            }
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_field(key: &str) -> Value {
        json!({"key": key, "label": {"type": "custom", "custom": "Their email"}, "type": "text",
               "text": {"maximum_length": "255"}})
    }

    #[test]
    fn stripes_limits_are_kept() {
        let four = json!([
            text_field("a"),
            text_field("b"),
            text_field("c"),
            text_field("d")
        ]);
        assert!(parse(Some(&four)).is_err());
        assert!(parse(Some(&json!([text_field("a"), text_field("a")]))).is_err());
        assert!(parse(Some(&json!([text_field("not alnum!")]))).is_err());
        let long_label = json!([{"key": "a", "label": {"type": "custom", "custom": "x".repeat(51)}, "type": "text"}]);
        assert!(parse(Some(&long_label)).is_err());
        let too_long = json!([{"key": "a", "label": {"type": "custom", "custom": "A"}, "type": "text",
                               "text": {"maximum_length": "256"}}]);
        assert!(parse(Some(&too_long)).is_err());
        let fields = parse(Some(&json!([text_field("giftemail")]))).unwrap();
        assert_eq!(fields[0]["text"]["maximum_length"], 255);
        assert_eq!(fields[0]["optional"], false);
    }

    #[test]
    fn answers_are_checked_as_the_page_checks_them() {
        let fields = parse(Some(&json!([
            text_field("giftemail"),
            {"key": "note", "label": {"type": "custom", "custom": "A message"}, "type": "text",
             "optional": "true", "text": {"maximum_length": "10"}},
        ])))
        .unwrap();
        assert!(answered(&fields, |_| String::new()).is_err(), "required");
        let long = answered(&fields, |key| {
            if key == "note" {
                "x".repeat(11)
            } else {
                "a@b.c".into()
            }
        });
        assert!(long.is_err());
        let done = answered(&fields, |key| {
            if key == "giftemail" {
                "eve@example.com".into()
            } else {
                String::new()
            }
        })
        .unwrap();
        assert_eq!(done[0]["text"]["value"], "eve@example.com");
        assert_eq!(done[1]["text"]["value"], Value::Null);
    }
}
