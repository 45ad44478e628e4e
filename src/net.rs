//! What every HTTP client of shop shares (Stripe's, GitHub's, the mail
//! transport's TLS) and the server's links use: the TLS provider, and
//! percent-encoding of one URL component.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Installs rustls' ring provider once per process (we build no OpenSSL).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What a URL component may carry as it is: RFC 3986's unreserved
/// characters. Everything else is percent-encoded.
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One value percent-encoded for a URL: a path segment or a query value.
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_keep_only_unreserved_characters() {
        assert_eq!(
            encode_component("The Guide (2nd ed.)/ü~a_b-c.pdf"),
            "The%20Guide%20%282nd%20ed.%29%2F%C3%BC~a_b-c.pdf"
        );
        assert_eq!(encode_component("a+b=c&d"), "a%2Bb%3Dc%26d");
    }
}
