//! Text that came from outside (a visitor's UTM values, a buyer's name or
//! address, an author's note), made safe to show: a control character
//! (an escape sequence that clears a screen, sets colours or writes the
//! clipboard with OSC 52; a line break) or an invisible bidirectional
//! control is shown as its code, `\u{1b}`, never acted on.

use crate::store::values;
use std::borrow::Cow;

/// `text` with every control and bidirectional control character escaped.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || values::is_bidi_control(c);
    if !text.contains(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_shown_not_acted_on() {
        assert_eq!(printable("newsletter"), "newsletter");
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(
            printable("\u{1b}]52;c;ZXZpbA==\u{7}"),
            "\\u{1b}]52;c;ZXZpbA==\\u{7}"
        );
        assert_eq!(printable("x\r\ny\u{9b}"), "x\\u{d}\\u{a}y\\u{9b}");
        assert_eq!(printable("book\u{202e}fdp.exe"), "book\\u{202e}fdp.exe");
        assert_eq!(printable("Café ☕"), "Café ☕");
    }
}
