//! Stripe's form encoding as Stripe reads it: `application/x-www-form-
//! urlencoded` with nested keys in brackets (`line_items[0][price]`,
//! `metadata[product]`), decoded into nested JSON. The sandbox's own
//! decoder: `shop`'s client only encodes, so a mistake in one is not
//! matched by the other.

use serde_json::{Map, Value};

/// Decodes a form body or query string into nested JSON: `a[b][0][c]=v`
/// becomes `{"a": {"b": [{"c": "v"}]}}`. Every leaf is a string, as Stripe
/// receives it.
///
/// The pairs come from `form_urlencoded`; the nesting is kept by hand, as
/// Stripe reads it (`serde_qs` turns `a[0]` into arrays only when
/// deserializing into a typed sequence, and reports conflicts otherwise).
pub fn decode(body: &str) -> Result<Value, String> {
    // `form_urlencoded` keeps a broken escape as it is; Stripe (Rack)
    // refuses the request.
    let bytes = body.as_bytes();
    let broken = bytes.iter().enumerate().any(|(at, &byte)| {
        byte == b'%'
            && !bytes
                .get(at + 1..at + 3)
                .is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit))
    });
    if broken {
        return Err(format!("invalid percent-encoding in `{body}`"));
    }
    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(body.as_bytes()) {
        let path = key_path(&key)?;
        insert(&mut root, &path, value.into_owned(), &key)?;
    }
    Ok(arrays_from_indexes(root))
}

/// `a[b][0]` → `["a", "b", "0"]`; `a[]` gives an empty segment (append).
fn key_path(key: &str) -> Result<Vec<String>, String> {
    let (head, mut rest) = match key.find('[') {
        Some(start) => (&key[..start], &key[start..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return Err(format!("invalid parameter name `{key}`"));
    }
    let mut path = vec![head.to_owned()];
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix('[')
            .and_then(|tail| tail.split_once(']'))
            .ok_or_else(|| format!("invalid parameter name `{key}`"))?;
        path.push(inner.0.to_owned());
        rest = inner.1;
    }
    Ok(path)
}

fn insert(node: &mut Value, path: &[String], value: String, key: &str) -> Result<(), String> {
    let conflict = || format!("parameter `{key}` conflicts with another of the same name");
    let Value::Object(map) = node else {
        return Err(conflict());
    };
    let (first, rest) = path.split_first().ok_or_else(conflict)?;
    // `a[]=x`: append under the next free index.
    let first = if first.is_empty() {
        map.len().to_string()
    } else {
        first.clone()
    };
    if rest.is_empty() {
        if map.contains_key(&first) && !map[&first].is_string() {
            return Err(conflict());
        }
        map.insert(first, Value::String(value));
        return Ok(());
    }
    let child = map
        .entry(first)
        .or_insert_with(|| Value::Object(Map::new()));
    insert(child, rest, value, key)
}

/// Objects whose keys are all indexes 0..n become arrays.
fn arrays_from_indexes(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let is_array = !map.is_empty()
                && map.keys().all(|key| key.parse::<usize>().is_ok())
                && (0..map.len()).all(|index| map.contains_key(&index.to_string()));
            if is_array {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(key, value)| (key.parse().unwrap_or(0), arrays_from_indexes(value)))
                    .collect();
                items.sort_by_key(|(index, _)| *index);
                Value::Array(items.into_iter().map(|(_, value)| value).collect())
            } else {
                Value::Object(
                    map.into_iter()
                        .map(|(key, value)| (key, arrays_from_indexes(value)))
                        .collect(),
                )
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_nested_keys() {
        let body = "line_items[0][price]=price_1&line_items[0][quantity]=1&line_items[1][price]=p2\
                    &metadata%5Bproduct%5D=guide&expand[]=line_items&expand[]=payment_intent&name=A+%26+B";
        assert_eq!(
            decode(body).unwrap(),
            json!({
                "line_items": [{"price": "price_1", "quantity": "1"}, {"price": "p2"}],
                "metadata": {"product": "guide"},
                "expand": ["line_items", "payment_intent"],
                "name": "A & B",
            })
        );
    }

    #[test]
    fn refuses_malformed_input() {
        assert!(decode("a[b=1").is_err());
        assert!(decode("[x]=1").is_err());
        assert!(decode("a=%zz").is_err());
        assert!(decode("a=1&a[b]=2").is_err());
    }
}
