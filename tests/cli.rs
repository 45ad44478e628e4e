//! The command surface: help, usage errors, commands not built yet.

use crate::harness::Test;

const COMMANDS: &[&str] = &[
    "init",
    "products",
    "release",
    "preorder",
    "checkout",
    "sync",
    "notify",
    "serve",
    "sandbox",
    "report",
    "grant",
    "token",
    "find",
    "refund",
    "trace",
    "completions",
    "man",
];

#[test]
fn every_command_has_help_with_examples_and_the_global_options_once() {
    let test = Test::new();
    let help = test.shop(&["--help"]).success().stdout();
    // The global options, once, under their heading, in `shop --help`.
    let globals = help
        .split("Global options (for every subcommand):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("`shop --help` has no global options\n{help}"));
    for flag in [
        "--store <DIR>",
        "-q, --quiet",
        "--json",
        "--stripe-api-base <URL>",
    ] {
        assert!(globals.contains(flag), "`shop --help` lacks {flag}\n{help}");
    }
    for command in COMMANDS {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "`shop --help` does not list {command}\n{help}"
        );
        let own = test.shop(&[command, "--help"]).success().stdout();
        assert!(own.contains(&format!("Usage: shop {command}")), "{own}");
        assert!(
            own.contains(&format!("Examples:\n  shop {command}"))
                || own.contains("Examples:\n  source <(shop completions"),
            "`shop {command} --help` has no example\n{own}"
        );
        assert!(
            own.contains(
                "Global options (--store, --json, -q, -v, --base-url, …): see `shop --help`."
            ),
            "{own}"
        );
        assert!(
            !own.contains("--stripe-api-base") && !own.contains("--github-uploads-base"),
            "`shop {command} --help` repeats the global options\n{own}"
        );
    }
    // The global flags still work after a subcommand.
    test.shop(&["products", "--json", "--store", "nowhere"])
        .code(1);
}

#[test]
fn a_server_given_a_port_is_told_of_listen_and_the_sandbox_is_not_stripe_mock() {
    let test = Test::store();
    test.shop(&["serve", "--port", "9090"]).code(2).stderr_is(
        "error: `shop serve` has no `--port`: it listens on an address\n\
         hint: give `--listen 127.0.0.1:9090` (or `--listen 0.0.0.0:9090` behind a proxy), and a `base_url` that reaches it\n",
    );
    // stripe-mock listens on 12111 and 12112.
    let sandbox = test.shop(&["sandbox", "--help"]).success().stdout();
    // (However clap wraps the help to the width of its longest flag.)
    let words = sandbox.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("[default: 4111]"), "{sandbox}");
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
    // The shell asks shop itself (`SHOP_COMPLETE`), so the store's slugs
    // and versions complete.
    let bash = test.shop(&["completions", "bash"]).success().stdout();
    assert!(
        bash.contains("SHOP_COMPLETE=\"bash\"") && bash.contains("complete -o nospace"),
        "{bash}"
    );
    let zsh = test.shop(&["completions", "zsh"]).success().stdout();
    assert!(zsh.contains("#compdef shop"), "{zsh}");
    let man = test.shop(&["man"]).success().stdout();
    assert!(
        man.contains(".TH shop 1") && man.contains("Sell digital files from a git repository"),
        "{man}"
    );
    test.shop(&["completions", "tcsh"]).code(2);
}

/// What bash would get for the word at `index` of `line` (as
/// `shop completions bash` asks), one candidate a line.
fn completed(test: &Test, line: &[&str], index: usize) -> Vec<String> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
        .arg("--")
        .args(line)
        .current_dir(test.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SHOP_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", index.to_string())
        .env("_CLAP_IFS", "\n")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn slugs_and_versions_complete_from_the_store() {
    let test = Test::store();
    test.write(
        "products/old-roads.toml",
        "name = \"Old Roads\"\nprice = \"24.00\"\nfiles = [\"roads.pdf\"]\n\
         [[release]]\nversion = \"1.2.0\"\ndate = 2026-12-05\ntag = \"old-roads-v1.2.0\"\n\
         stripe_product = \"prod_1\"\nstripe_price = \"price_1\"\npayment_link = \"plink_1\"\n\
         payment_link_url = \"https://buy.stripe.com/x\"\n",
    );
    assert_eq!(
        completed(&test, &["shop", "release", "o"], 2),
        ["old-roads"]
    );
    assert_eq!(
        completed(&test, &["shop", "notify", "old-roads", "1"], 3),
        ["1.2.0"]
    );
    // A release offers what may come next.
    assert_eq!(
        completed(&test, &["shop", "release", "old-roads", "1"], 3),
        ["1.0.0", "1.2.1", "1.3.0"]
    );
    assert_eq!(
        completed(&test, &["shop", "grant", "ada@example.com", "ex"], 3),
        ["example-book"]
    );
}

#[test]
fn the_manual_at_a_terminal_is_read_through_man() {
    use std::os::unix::fs::PermissionsExt as _;
    let test = Test::new();
    // A `man` that notes how it was called and what it was given.
    let bin = test.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let man = bin.join("man");
    std::fs::write(
        &man,
        "#!/bin/sh\necho \"$@\" > \"$MAN_SEEN\"\ncat >> \"$MAN_SEEN\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&man, std::fs::Permissions::from_mode(0o755)).unwrap();
    let seen = test.root().join("seen");
    // `script` gives shop a terminal.
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} man release", env!("CARGO_BIN_EXE_shop")),
            "/dev/null",
        ])
        .env("PATH", &path)
        .env("MAN_SEEN", &seen)
        .output()
        .expect("util-linux's script");
    assert!(output.status.success(), "{output:?}");
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(seen.starts_with("-l -\n"), "{seen}");
    assert!(seen.contains("\n.TH shop-release 1"), "{seen}");
    // Not at a terminal: the roff itself, for `man -l -` or a file.
    let printed = test.shop(&["man", "release"]).success().stdout();
    assert_eq!(seen.strip_prefix("-l -\n"), Some(printed.as_str()));
}

#[test]
fn every_page_the_manual_names_exists_with_environment_and_exit_status() {
    let test = Test::new();
    let dir = test.root().join("man1");
    std::fs::create_dir_all(&dir).unwrap();
    test.shop(&["man", "--dir", dir.to_str().unwrap()])
        .success()
        .stderr_has(&["wrote 21 manual pages to `"]);
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
