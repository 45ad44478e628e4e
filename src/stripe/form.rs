//! Stripe's form encoding: `application/x-www-form-urlencoded` with nested
//! keys in brackets (`line_items[0][price]`, `metadata[product]`).
//!
//! [`Form`] builds a request body or query string. (The sandbox reads them
//! with a decoder of its own, so that a mistake here is not matched there.)

use crate::net;

/// Parameters of one request, in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn new() -> Form {
        Form::default()
    }

    /// Adds `key=value`.
    pub fn field(mut self, key: impl Into<String>, value: impl ToString) -> Form {
        self.pairs.push((key.into(), value.to_string()));
        self
    }

    /// Adds `key=value` when there is a value.
    pub fn optional(self, key: impl Into<String>, value: Option<impl ToString>) -> Form {
        match value {
            Some(value) => self.field(key, value),
            None => self,
        }
    }

    /// Adds each entry as `{prefix}[name]=value`.
    pub fn map<'a>(
        mut self,
        prefix: &str,
        entries: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Form {
        for (name, value) in entries {
            self.pairs
                .push((format!("{prefix}[{name}]"), value.clone()));
        }
        self
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The encoded form: `a=1&b%5Bc%5D=2`, with brackets left readable as
    /// Stripe's own libraries send them.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (index, (key, value)) in self.pairs.iter().enumerate() {
            if index > 0 {
                out.push('&');
            }
            percent_encode(key, true, &mut out);
            out.push('=');
            percent_encode(value, false, &mut out);
        }
        out
    }
}

/// Stripe's keys keep their brackets readable, as its own libraries send
/// them.
const KEY: &percent_encoding::AsciiSet = &net::COMPONENT.remove(b'[').remove(b']');

fn percent_encode(text: &str, is_key: bool, out: &mut String) {
    let set = if is_key { KEY } else { net::COMPONENT };
    out.extend(percent_encoding::utf8_percent_encode(text, set));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_readable_brackets() {
        let form = Form::new()
            .field("line_items[0][price]", "price_1")
            .field("metadata[product]", "guide")
            .field(
                "success_url",
                "https://x.example/thanks?session_id={CHECKOUT_SESSION_ID}",
            )
            .field("name", "A & B");
        assert_eq!(
            form.encode(),
            "line_items[0][price]=price_1&metadata[product]=guide&\
             success_url=https%3A%2F%2Fx.example%2Fthanks%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D&\
             name=A%20%26%20B"
        );
    }
}
