//! The command surface: help, usage errors, commands not built yet.

use crate::harness::Test;

const COMMANDS: &[&str] = &[
    "init", "products", "release", "checkout", "sync", "notify", "serve", "sandbox", "report",
    "token",
];

#[test]
fn every_command_has_help() {
    let test = Test::new();
    let help = test.shop(&["--help"]).success().stdout();
    for command in COMMANDS {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "`shop --help` does not list {command}\n{help}"
        );
        let own = test.shop(&[command, "--help"]).success().stdout();
        assert!(own.contains(&format!("Usage: shop {command}")), "{own}");
        assert!(
            own.contains("--store <DIR>"),
            "`shop {command} --help` lacks the global flags\n{own}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let test = Test::store();
    test.shop(&["--no-such-flag"])
        .code(2)
        .stderr_has(&["unexpected argument"]);
    test.shop(&["frobnicate"]).code(2);
    test.shop(&["release", "example-book", "one", "a.pdf"])
        .code(2)
        .stderr_has(&["`one` is not a semantic version"]);
    test.shop(&["release", "example-book", "1.0.0"])
        .code(2)
        .stderr_has(&["<FILE>"]);
    test.shop(&["checkout", "example-book", "--expires", "soon"])
        .code(2)
        .stderr_has(&["`soon` is not a duration"]);
    test.shop(&["sync", "--since", "yesterday"])
        .code(2)
        .stderr_has(&["`yesterday` is not a date"]);
    test.shop(&["notify", "example-book", "1.0.0", "--rate", "fast"])
        .code(2)
        .stderr_has(&["`fast` is not a rate"]);
    test.shop(&["token", "cs_test_1", "--grant", "0"]).code(2);
    test.shop(&["-q", "-v", "products"]).code(2);
}

#[test]
fn completions_and_the_manual_come_from_the_command_line_definition() {
    let test = Test::new();
    let bash = test.shop(&["completions", "bash"]).success().stdout();
    assert!(
        bash.contains("_shop()") && bash.contains("release") && bash.contains("--dry-run"),
        "{bash}"
    );
    let zsh = test.shop(&["completions", "zsh"]).success().stdout();
    assert!(zsh.starts_with("#compdef shop"), "{zsh}");
    let man = test.shop(&["man"]).success().stdout();
    assert!(
        man.contains(".TH shop 1") && man.contains("Sell digital files from a git repository"),
        "{man}"
    );
    test.shop(&["completions", "tcsh"]).code(2);
}

#[test]
fn version_is_printed() {
    Test::new()
        .shop(&["--version"])
        .success()
        .stdout_has(&[concat!("shop ", env!("CARGO_PKG_VERSION"))]);
}
