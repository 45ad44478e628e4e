//! The README's first command, run as a newcomer would (without a
//! terminal): every step of the sale happens and says so.

fn demo(args: &[&str]) -> std::process::Output {
    std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo"))
        .args(args)
        .env("SHOP_BIN", env!("CARGO_BIN_EXE_shop"))
        .env("CI", "true")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/demo")
}

/// The store a demo run kept or removed: the path it printed.
fn store_of(stdout: &str) -> std::path::PathBuf {
    let line = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("store:"))
        .unwrap_or_else(|| panic!("no store line in\n{stdout}"));
    std::path::PathBuf::from(line.trim().split(' ').next().unwrap())
}

#[test]
fn the_demo_keeps_its_store_when_asked_and_only_then() {
    let kept = demo(&["--keep"]);
    let stdout = String::from_utf8_lossy(&kept.stdout);
    let stderr = String::from_utf8_lossy(&kept.stderr);
    assert!(kept.status.success(), "{stdout}\n{stderr}");
    let store = store_of(&stdout);
    assert!(
        stderr.contains(&format!("the demo's store is kept at {}", store.display())),
        "{stderr}"
    );
    assert!(store.join("shop.toml").is_file(), "{}", store.display());
    assert!(store.join("purchases").is_dir());
    std::fs::remove_dir_all(store.parent().unwrap()).unwrap();

    let removed = demo(&[]);
    assert!(removed.status.success());
    let store = store_of(&String::from_utf8_lossy(&removed.stdout));
    assert!(!store.exists(), "{} was left behind", store.display());

    let wrong = demo(&["--kep"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).ends_with("hint: the only option is `--keep`\n")
    );
}

#[test]
fn the_demo_runs_the_whole_sale() {
    let output = demo(&[]);
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
        // Less Stripe's fee for a US card: 2.9 % + 30 ¢.
        "example-book  1      19.00 USD  0.00 USD  0.85 USD  18.15 USD",
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
