//! What every HTTP client of shop shares (Stripe's, GitHub's, the mail
//! transport's TLS) and the server's links use: the TLS provider,
//! percent-encoding of one URL component, and a file's media type.

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

/// The media type of a product file, by extension: how GitHub keeps an
/// asset and how the server sends it. By hand rather than `mime_guess`:
/// the kinds of files authors sell are few, and text needs its charset.
pub fn content_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "epub" => "application/epub+zip",
        "mobi" | "azw3" => "application/x-mobipocket-ebook",
        "zip" => "application/zip",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "mp3" => "audio/mpeg",
        "m4b" => "audio/mp4",
        "mp4" => "video/mp4",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
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
