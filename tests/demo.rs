//! The README's first command, run as a newcomer would (without a
//! terminal): every step of the sale happens and says so.

#[test]
fn the_demo_runs_the_whole_sale() {
    let output = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo"))
        .env("SHOP_BIN", env!("CARGO_BIN_EXE_shop"))
        .env("CI", "true")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    for expected in [
        "payment link: http://127.0.0.1:",
        "/thanks?session_id=cs_test_",
        "example-book.pdf: 5 downloads left",
        "downloaded example-book.pdf: identical to the released file",
        "1 new, 0 refunded, 0 disputed; committed",
        "\"product\":\"example-book\",\"version\":\"1.0.0\",\"amount\":1900",
        "example-book  1      19.00 USD  0.00 USD  19.00 USD",
        "Subject: Your receipt from Demo Books: An Example Book 1.0.0",
        "To: reader@example.com",
        "\"email\":\"reader@example.com\"",
        "Subject: An Example Book 1.1.0 is out",
        "List-Unsubscribe: <http://127.0.0.1:",
    ] {
        assert!(
            stdout.contains(expected),
            "the demo's output lacks {expected:?}\n{stdout}\n{stderr}"
        );
    }
}
