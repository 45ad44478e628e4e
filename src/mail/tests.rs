use super::*;

fn values() -> BTreeMap<&'static str, String> {
    [
        ("shop", "A & B Books"),
        ("support", "help@example.com"),
        ("base_url", "https://books.example"),
        ("product", "The <Guide>"),
        ("version", "1.0.0"),
        ("link", "https://books.example/d/abc"),
        ("expires", "2026-12-01"),
        ("limit", "5"),
        ("email", "ada@example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

#[test]
fn every_html_part_is_a_whole_document() {
    let dir = tempfile::tempdir().unwrap();
    let templates = Templates::load(dir.path()).unwrap();
    for kind in Kind::ALL {
        let values: BTreeMap<&str, String> = kind
            .variables()
            .iter()
            .map(|name| (*name, format!("<{name}>")))
            .collect();
        let html = templates.render(kind, &values).unwrap().html;
        assert!(html.starts_with("<!doctype html>"), "{kind:?}: {html}");
        assert!(html.trim_end().ends_with("</html>"), "{kind:?}: {html}");
        assert!(html.contains("<meta charset=\"utf-8\">"), "{kind:?}");
        assert!(
            html.contains("&lt;shop&gt;"),
            "{kind:?}: the shop's name is missing"
        );
        assert!(
            !html.contains("{{"),
            "{kind:?}: a placeholder is left: {html}"
        );
    }
}

#[test]
fn a_fragment_override_becomes_a_whole_document_and_long_lines_wrap() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates/mail")).unwrap();
    std::fs::write(
        dir.path().join("templates/mail/receipt.html"),
        "<p>{{product}}</p><p><a href=\"{{link}}\">Download</a></p><p><a href=\"{{withdraw}}\">Withdraw</a></p>",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("templates/mail/receipt.txt"),
        "Subject: {{product}}\n\nYou bought {{product}} from {{shop}}, and this sentence is long enough to need wrapping somewhere.\n{{link}}\n{{withdraw}}\n",
    )
    .unwrap();
    let templates = Templates::load(dir.path()).unwrap();
    let mut values = values();
    values.insert(
        "link",
        format!("https://books.example/d/{}", "x-y".repeat(40)),
    );
    let rendered = templates.render(Kind::Receipt, &values).unwrap();
    assert!(
        rendered.html.starts_with("<!doctype html>"),
        "{}",
        rendered.html
    );
    assert!(rendered.html.contains("<p>The &lt;Guide&gt;</p>"));
    let lines: Vec<&str> = rendered.text.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "You bought The <Guide> from A & B Books, and this sentence is long",
            "enough to need wrapping somewhere.",
        ]
    );
    // A link longer than a line stays whole.
    assert_eq!(lines[2], values["link"]);
}

#[test]
fn receipts_render_both_parts() {
    let dir = tempfile::tempdir().unwrap();
    let templates = Templates::load(dir.path()).unwrap();
    let mut values = values();
    values.insert("order", "NilK0Vl".into());
    values.insert("date", "2026-12-05 10:00:00 UTC".into());
    values.insert("paid", "24.00 USD (after a discount of 5.00 USD)".into());
    values.insert("lost", "https://books.example/lost".into());
    let rendered = templates.render(Kind::Receipt, &values).unwrap();
    assert_eq!(
        rendered.subject,
        "Your receipt from A & B Books: The <Guide> 1.0.0"
    );
    let text = &rendered.text;
    assert!(
        text.starts_with("Thank you for buying The <Guide> from A & B Books!"),
        "{text}"
    );
    for line in [
        "Order: NilK0Vl",
        "Date: 2026-12-05 10:00:00 UTC",
        "Product: The <Guide>, version 1.0.0",
        "Paid: 24.00 USD (after a discount of 5.00 USD)",
        "https://books.example/d/abc",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?}:\n{text}");
    }
    // Wrapped at 72 columns between words: no sentence is cut in a word.
    assert!(
        text.lines().all(|line| line.chars().count() <= 72),
        "{text}"
    );
    // ...and each paragraph flows: lines are full, not cut short.
    assert!(
        text.replace('\n', " ").contains(
            "Download your files here. The link works until 2026-12-01, and each file can be downloaded 5 times:"
        ),
        "{text}"
    );
    assert!(
        text.contains("and each file\ncan be downloaded"),
        "a line of the paragraph was not filled to 72 columns:\n{text}"
    );
    let html = &rendered.html;
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.trim_end().ends_with("</html>"), "{html}");
    assert!(
        html.contains("<strong>The &lt;Guide&gt;</strong>"),
        "{html}"
    );
    assert!(
        html.contains("<title>Your receipt from A &amp; B Books"),
        "{html}"
    );
    assert!(html.contains("prefers-color-scheme: dark"), "{html}");
    assert!(html.contains(">NilK0Vl</td>"), "{html}");
    let message = compose(
        "Books <books@example.com>",
        "ada@example.com",
        &rendered,
        &message_id("r1", "books@example.com"),
        None,
    )
    .unwrap();
    let text = String::from_utf8(message.formatted()).unwrap();
    assert!(text.contains("Message-ID: <r1@example.com>"), "{text}");
    assert!(text.contains("multipart/alternative"), "{text}");
}

#[test]
fn a_template_that_drops_what_its_message_must_show_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates/mail")).unwrap();
    std::fs::write(
        dir.path().join("templates/mail/notice.html"),
        "<p>{{ product }} {{ version }}: {{ link }}</p>\n",
    )
    .unwrap();
    let error = Templates::load(dir.path()).unwrap_err().to_string();
    assert_eq!(
        error,
        "`templates/mail/notice.html` line 1: the message does not show `{{ unsubscribe }}`, which it must"
    );
}

#[test]
fn broken_templates_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates/mail")).unwrap();
    std::fs::write(
        dir.path().join("templates/mail/notice.html"),
        "<p>hi</p>\n<p>{{nmae}}</p>\n",
    )
    .unwrap();
    let error = Templates::load(dir.path()).unwrap_err().to_string();
    assert!(
        error.starts_with(
            "`templates/mail/notice.html` line 2: `nmae` is not a value of this message (it has `shop`,"
        ),
        "{error}"
    );
    std::fs::write(
        dir.path().join("templates/mail/notice.html"),
        "<p>{{link</p>\n",
    )
    .unwrap();
    let error = Templates::load(dir.path()).unwrap_err().to_string();
    assert_eq!(
        error,
        "`templates/mail/notice.html` line 1: syntax error: unexpected `/`"
    );
    // Conditions work as in the pages' templates.
    std::fs::write(
        dir.path().join("templates/mail/notice.html"),
        "<p>{% if notes %}{{ notes }}{% else %}No notes.{% endif %}</p>\n\
         <p>{{ link }} {{ unsubscribe }}</p>\n",
    )
    .unwrap();
    let templates = Templates::load(dir.path()).unwrap();
    let mut values = values();
    values.insert("notes", String::new());
    let rendered = templates.render(Kind::Notice, &values).unwrap();
    assert!(
        rendered.html.contains("<p>No notes.</p>"),
        "{}",
        rendered.html
    );
}
