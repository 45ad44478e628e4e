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
    // Files are optional to the parser (a bundle has none), not to a book.
    test.shop(&["release", "example-book", "1.0.0"])
        .code(1)
        .stderr_is(
            "error: the release of `example-book` lacks `example-book.pdf` and `example-book.epub`\n\
             hint: give every file the product lists in `files`\n",
        );
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
fn every_page_the_manual_names_exists_with_environment_and_exit_status() {
    let test = Test::new();
    let dir = test.root().join("man1");
    std::fs::create_dir_all(&dir).unwrap();
    test.shop(&["man", "--dir", dir.to_str().unwrap()])
        .success()
        .stderr_has(&["wrote 18 manual pages to `"]);
    let top = std::fs::read_to_string(dir.join("shop.1")).unwrap();
    // shop(1) names each subcommand's page as `shop-<name>(1)`.
    let named: Vec<String> = top
        .match_indices("shop\\-")
        .map(|(at, _)| {
            top[at + "shop\\-".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect()
        })
        .filter(|name: &String| !name.is_empty())
        .collect();
    assert!(named.contains(&"preorder".to_owned()), "{top}");
    for name in named {
        let page = std::fs::read_to_string(dir.join(format!("shop-{name}.1")))
            .unwrap_or_else(|_| panic!("shop.1 names shop-{name}(1), which was not written"));
        assert!(page.contains(&format!(".TH shop-{name} 1")), "{page}");
        for section in [
            ".SH ENVIRONMENT",
            ".SH \"EXIT STATUS\"",
            "\\fBSTRIPE_SECRET_KEY\\fR",
        ] {
            assert!(page.contains(section), "shop-{name}.1 lacks {section}");
        }
    }
    let release = test.shop(&["man", "release"]).success().stdout();
    assert_eq!(
        release,
        std::fs::read_to_string(dir.join("shop-release.1")).unwrap()
    );
    test.shop(&["man", "relase"]).code(1).stderr_is(
        "error: `shop` has no subcommand `relase`\nhint: run `shop --help` for the list of subcommands\n",
    );
}

#[test]
fn version_is_printed() {
    Test::new()
        .shop(&["--version"])
        .success()
        .stdout_has(&[concat!("shop ", env!("CARGO_PKG_VERSION"))]);
}

/// Every error is printed once: the message, each cause once, and the hint
/// as the last line.
#[test]
fn errors_show_each_cause_once_and_the_hint_last() {
    let mut test = Test::store();
    test.shop(&[
        "release",
        "example-book",
        "1.0.0",
        "a.pdf",
        "--notes",
        "/nonexistent/notes.md",
    ])
    .code(1)
    .stderr_is(
        "error: cannot read the release notes `/nonexistent/notes.md`: \
         No such file or directory (os error 2)\n\
         hint: give a readable text file to `--notes`\n",
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    test.env("STRIPE_SECRET_KEY", "sk_test_x");
    test.env("SHOP_STRIPE_API_BASE", &dead);
    test.shop(&["--stripe-attempts", "1", "sync"])
        .code(1)
        .stderr_is(&format!(
            "error: cannot reach Stripe at `{dead}`: error sending request for url \
             ({dead}/v1/checkout/sessions?status=complete&limit=100&expand[0]=data.total_details.breakdown\
             &expand[1]=data.payment_intent.latest_charge.balance_transaction&expand[2]=data.invoice): \
             client error (Connect): \
             tcp connect error: Connection refused (os error 111)\n\
             hint: check the network, or `SHOP_STRIPE_API_BASE` if it points at `shop sandbox` \
             (is it running?)\n"
        ));
    test.env("SHOP_TOKEN_SECRET_FILE", "/nonexistent/secret");
    test.shop(&["token", "cs_test_1"]).code(1).stderr_is(
        "error: cannot read `SHOP_TOKEN_SECRET_FILE` (`/nonexistent/secret`): \
         No such file or directory (os error 2)\n\
         hint: point `SHOP_TOKEN_SECRET_FILE` at a readable file, or set `SHOP_TOKEN_SECRET` itself\n",
    );
}
