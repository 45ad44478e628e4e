//! The store model through the binary: the catalogue, and every kind of bad
//! input reported with its file, line, column and a hint, exit code 1.

use crate::harness::Test;

const BOOK: &str = r#"# The author's comment.
name = "The Field Guide"
price = "29.00"
files = ["guide.pdf", "guide.epub"]
"#;

/// Writes `products/guide.toml` into a fresh store and checks that
/// `shop products check` fails with exactly this problem and hint.
fn check_product(text: &str, problem: &str, hint: &str) {
    let test = Test::store();
    test.write("products/guide.toml", text);
    test.shop(&["products", "check"])
        .code(1)
        .stderr_is(&format!(
            "error: the store at `[TMP]/store` has 1 problem\n\n\
         `products/guide.toml` {problem}\nhint: {hint}\n"
        ));
}

const PRICE_HINT: &str =
    "write the price as a string with its decimals, such as `price = \"29.00\"`";
const FILE_HINT: &str =
    "use a plain file name such as `book.pdf`: no folders, no leading dot, no `..`";

#[test]
fn the_catalogue_lists_products_with_their_latest_release() {
    let test = Test::store();
    let release = |version: &str| {
        format!(
            "\n[[release]]\nversion = \"{version}\"\ndate = 2026-11-02\ntag = \"guide-v{version}\"\n\
             stripe_product = \"prod_1\"\nstripe_price = \"price_1\"\npayment_link = \"plink_{version}\"\n\
             payment_link_url = \"https://buy.stripe.com/test_{version}\"\n"
        )
    };
    test.write(
        "products/guide.toml",
        &format!("{BOOK}{}{}", release("1.0.0"), release("1.1.0")),
    );
    test.write("products/README.md", "not a product\n");
    test.shop(&["products"]).success().stderr_is("").stdout_is(
        "SLUG          NAME             PRICE      ON SALE  PAYMENT LINK\n\
         example-book  An Example Book  19.00 USD  -        -\n\
         guide         The Field Guide  29.00 USD  1.1.0    https://buy.stripe.com/test_1.1.0\n",
    );

    let json = test.shop(&["products", "--json"]).success().json();
    assert_eq!(json[1]["latest_version"], "1.1.0");
    assert_eq!(json[1]["price"]["amount"], 2900);
    assert_eq!(json[0]["latest_version"], serde_json::Value::Null);
}

#[test]
fn malformed_toml_names_file_line_and_column() {
    check_product(
        "name = \"Guide\"\nprice = \"29.00\nfiles = []\n",
        "line 2, column 15: invalid basic string, expected `\"`",
        "fix the TOML at that place; see https://toml.io for the syntax",
    );
}

#[test]
fn prices_in_floats_or_bare_integers_are_refused() {
    check_product(
        &BOOK.replace("\"29.00\"", "29.99"),
        "line 3, column 9: `price = 29.99` is a floating-point number, which cannot hold money exactly",
        PRICE_HINT,
    );
    check_product(
        &BOOK.replace("\"29.00\"", "2999"),
        "line 3, column 9: `price = 2999` is ambiguous: units or cents?",
        PRICE_HINT,
    );
    check_product(
        &BOOK.replace("\"29.00\"", "\"29.999\""),
        "line 3, column 9: `29.999` has more decimals than USD has (2)",
        PRICE_HINT,
    );
    check_product(
        &BOOK.replace("\"29.00\"", "\"gratis\""),
        "line 3, column 9: `gratis` is not a price: write a number, such as `24.00`",
        PRICE_HINT,
    );
    // Free is a word of its own: a sample, which sells nothing.
    check_product(
        &format!(
            "{}promotion_codes = true\n",
            BOOK.replace("\"29.00\"", "\"free\"")
        ),
        "line 3, column 9: a free product has no `promotion_codes`",
        "remove `promotion_codes`, or give the product a price",
    );
}

#[test]
fn prices_in_other_currencies_are_checked_by_each_currencys_rules() {
    let with = |prices: &str| format!("{BOOK}prices = {prices}\n");
    check_product(
        &with("{ jpy = \"39.50\" }"),
        "line 5, column 10: `prices.jpy`: `39.50` has more decimals than JPY has (0)",
        "write the price in JPY as a string, as in `prices = { gbp = \"21.00\", jpy = \"3900\" }`",
    );
    check_product(
        &with("{ gbp = \"0.10\" }"),
        "line 5, column 10: `prices.gbp`: `0.10 GBP` is below Stripe's smallest charge in GBP, 0.30 GBP",
        "set a price of at least `0.30`",
    );
    check_product(
        &with("{ usd = \"31.00\" }"),
        "line 5, column 10: `prices.usd` repeats the main currency: `price` is in USD",
        "remove `prices.usd`, or change `currency`",
    );
    check_product(
        &with("{ gpb = \"21.00\" }"),
        "line 5, column 10: `prices.gpb`: `gpb` is not a currency Stripe can charge in; did you mean `gbp`?",
        "name each currency by its three-letter ISO 4217 code, such as `gbp`",
    );
    // Pay what you want: a minimum (and a suggestion) in each.
    check_product(
        &format!(
            "{}prices = {{ gbp = \"21.00\" }}\n",
            BOOK.replace("\"29.00\"", "{ minimum = \"5.00\" }")
        ),
        "line 5, column 10: `prices.gbp` is not a minimum and a suggestion: `price` is pay what you want",
        "write it as `prices = { gbp = { minimum = \"4.00\", suggested = \"10.00\" } }`",
    );
    // Written well: every currency in the catalogue.
    let test = Test::store();
    test.write(
        "products/guide.toml",
        &with("{ gbp = \"21.00\", jpy = \"3900\" }"),
    );
    let json = test.shop(&["products", "--json"]).success().json();
    assert_eq!(
        json[1]["prices"],
        serde_json::json!([
            {"amount": 2100, "currency": "gbp", "suggested": null},
            {"amount": 3900, "currency": "jpy", "suggested": null},
        ])
    );
    test.shop(&["products"])
        .success()
        .stdout_has(&["29.00 USD (also 21.00 GBP, 3900 JPY)"]);
}

#[test]
fn unknown_currencies_are_refused() {
    check_product(
        &format!("{BOOK}currency = \"bitcoin\"\n"),
        "line 5, column 12: `bitcoin` is not a currency Stripe can charge in",
        "use a three-letter ISO 4217 code Stripe supports, such as `usd` or `eur`",
    );
}

#[test]
fn file_names_that_escape_are_refused() {
    check_product(
        &BOOK.replace("\"guide.epub\"", "\"../../etc/passwd\""),
        "line 4, column 23: file name `../../etc/passwd` could leave its folder (`..`)",
        FILE_HINT,
    );
    check_product(
        &BOOK.replace("\"guide.epub\"", "\"sub/guide.epub\""),
        "line 4, column 23: file name `sub/guide.epub` names a folder",
        FILE_HINT,
    );
}

#[test]
fn bad_slugs_are_refused_with_a_suggestion() {
    let test = Test::store();
    test.write("products/My Guide.toml", BOOK);
    test.shop(&["products", "check"]).code(1).stderr_has(&[
        "`products/My Guide.toml`: `My Guide` is not a valid product slug",
        "such as `my-guide.toml`",
    ]);
}

#[test]
fn bad_policies_and_limits_are_refused() {
    check_product(
        &format!("{BOOK}updates = \"forever\"\n"),
        "line 5, column 11: `forever` is not an update policy",
        "use `all` (every earlier buyer), `same-major` (buyers of the same major version) or `none`",
    );
    check_product(
        &format!("{BOOK}download_limit = 0\n"),
        "line 5, column 18: `0` is not a download limit",
        "use a whole number of downloads per file between 1 and 1000 (the default is 5)",
    );
}

#[test]
fn covers_must_be_images_inside_the_store() {
    const HINT: &str =
        "name an image kept in the store, such as `covers/book.jpg` (PNG, JPEG, WebP, GIF or AVIF)";
    check_product(
        &format!("{BOOK}cover = \"../secret.png\"\n"),
        "line 5, column 9: `cover` `../secret.png` is not a path inside the store",
        HINT,
    );
    check_product(
        &format!("{BOOK}cover = \"covers/guide.svg\"\n"),
        "line 5, column 9: `cover` `covers/guide.svg` is not a PNG, JPEG, WebP, GIF or AVIF image",
        HINT,
    );
}

#[test]
fn unknown_and_missing_keys_are_refused() {
    check_product(
        &format!("{BOOK}pirce = \"1\"\n"),
        "line 5, column 1: unknown field `pirce`, expected one of `name`, `description`, `cover`, \
         `price`, `currency`, `prices`, `files`, `bundle`, `download_limit`, `updates`, `upgrade_discount`, \
         `upgrade_days`, `promotion_codes`, `stamp`, `tax_code` and `release`",
        "did you mean `price`?",
    );
    check_product(
        "name = \"x\"\nfiles = [\"a.pdf\"]\n",
        "line 1, column 1: missing field `price`",
        "add the missing key",
    );
    // An unknown key does not hide the file's other problems.
    let test = Test::store();
    test.write(
        "products/guide.toml",
        "name = \"\"\nprice = 24.00\nfiles = [\"guide.pdf\"]\npirce = \"1\"\n",
    );
    test.shop(&["products", "check"]).code(1).stderr_has(&[
        "has 3 problems",
        "line 1, column 8: `name` is empty",
        "line 2, column 9: `price = 24.00` is a floating-point number",
        "line 4, column 1: unknown field `pirce`",
    ]);
}

#[test]
fn bad_settings_are_refused() {
    let test = Test::store();
    let settings = test
        .read("shop.toml")
        .replace(
            "support_email = \"help@example.com\"",
            "support_email = \"help\"",
        )
        .replace("link_lifetime = \"7d\"", "link_lifetime = \"a week\"")
        .replace("repository = \"\"", "repository = \"not-a-repo\"");
    test.write("shop.toml", &settings);
    test.shop(&["products", "check"]).code(1).stderr_has(&[
        "has 3 problems",
        "`shop.toml` line 18, column 17: `help` is not an email address",
        "`a week` is not a duration",
        "`not-a-repo` is not a GitHub repository",
    ]);
}

#[test]
fn every_problem_in_every_file_is_reported_at_once() {
    let test = Test::store();
    test.write(
        "shop.toml",
        &test
            .read("shop.toml")
            .replace("currency = \"usd\"", "currency = \"usdollar\""),
    );
    test.write("products/a.toml", "name = [\n");
    test.write(
        "products/b.toml",
        &BOOK
            .replace("\"29.00\"", "29")
            .replace("\"guide.pdf\"", "\"../x\""),
    );
    let run = test.shop(&["products", "check"]).code(1);
    let stderr = run.stderr();
    assert!(stderr.contains("has 4 problems"), "{stderr}");
    for expected in [
        "`shop.toml` line",
        "`usdollar`",
        "`products/a.toml` line 1",
        "`price = 29` is ambiguous",
        "`../x`",
    ] {
        assert!(stderr.contains(expected), "lacks {expected}\n{stderr}");
    }
    // Each problem's hint, then the error's own as the last line.
    assert_eq!(stderr.matches("\nhint: ").count(), 5, "{stderr}");
    assert!(
        stderr.ends_with("\nhint: fix each problem above, then check with `shop products check`\n"),
        "{stderr}"
    );
}

#[test]
fn releases_recorded_badly_are_refused() {
    let release = "\n[[release]]\nversion = \"one\"\ndate = 2026-11-02\ntag = \"guide-vone\"\n\
                   stripe_product = \"prod_1\"\nstripe_price = \"price_1\"\npayment_link = \"plink_1\"\n\
                   payment_link_url = \"https://buy.stripe.com/x\"\n";
    check_product(
        &format!("{BOOK}{release}"),
        "line 7, column 11: `one` is not a semantic version: unexpected character 'o' while parsing major version number",
        "versions look like `1.2.0`",
    );
}

#[test]
fn a_folder_without_shop_toml_is_not_a_store() {
    let test = Test::new();
    test.shop(&["products"]).code(1).stderr_is(
        "error: `[TMP]` is not a shop store: it has no `shop.toml`\n\
         hint: run `shop init [TMP]` to make one there, or pass `--store DIR`\n",
    );
}

#[test]
fn the_store_comes_from_the_flag_or_the_environment() {
    let test = Test::store();
    let store = test.path().to_str().unwrap().to_owned();
    let mut elsewhere = Test::new();
    elsewhere
        .shop(&["--store", &store, "products"])
        .success()
        .stdout_has(&["example-book"]);
    elsewhere.env("SHOP_STORE", &store);
    elsewhere
        .shop(&["products"])
        .success()
        .stdout_has(&["example-book"]);
}

#[test]
fn a_bad_override_names_its_variable() {
    let mut test = Test::store();
    test.env("SHOP_BASE_URL", "localhost:8080");
    test.shop(&["products", "check"]).code(1).stderr_has(&[
        "`--base-url / SHOP_BASE_URL`: `localhost:8080` is not an http or https URL",
        "hint:",
    ]);
    test.shop(&["--base-url", "https://books.example", "products", "check"])
        .success();
}

#[test]
fn secrets_are_checked_but_never_shown() {
    let mut test = Test::store();
    test.env("STRIPE_SECRET_KEY", "pk_test_publishable_oops");
    test.env("STRIPE_WEBHOOK_SECRET", "whsec_fine_secret_value");
    test.env("SHOP_TOKEN_SECRET_FILE", "/nonexistent/token-secret");
    let run = test.shop(&["products", "check"]).code(1).stderr_has(&[
        "`STRIPE_SECRET_KEY` does not look right",
        "hint: a Stripe secret key starts with",
        "cannot read `SHOP_TOKEN_SECRET_FILE`",
    ]);
    run.stdout_has(&[
        "STRIPE_WEBHOOK_SECRET  set",
        "GITHUB_TOKEN           not set",
    ])
    .never_shows("publishable_oops")
    .never_shows("fine_secret_value");
}

#[test]
fn pay_what_you_want_prices_are_checked_as_stripe_would() {
    for (price, problem, hint) in [
        (
            "{ minimum = \"0.00\" }",
            "`price.minimum = \"0.00\"`: Stripe takes no pay-what-you-want minimum below its smallest charge",
            "set `minimum` to at least Stripe's smallest charge (0.50 USD, or its equal); to give copies away, use `shop grant`",
        ),
        (
            "{ minimum = \"0.20\" }",
            "`0.20 USD` is below Stripe's smallest charge in USD, 0.50 USD: a pay-what-you-want minimum must be a charge Stripe can make",
            "set a price of at least `0.50` as `minimum`; to give copies away, use `shop grant`",
        ),
        (
            "{ minimum = \"5.00\", suggested = \"4.00\" }",
            "`price.suggested` (4.00 USD) is below `price.minimum` (5.00 USD)",
            "suggest at least the minimum",
        ),
        (
            "{ minimum = \"5.00\", maximum = \"50.00\" }",
            "`price.maximum` is not a price setting",
            "write `price = { minimum = \"5.00\", suggested = \"12.00\" }` (`suggested` may be left out)",
        ),
        (
            "{ suggested = \"12.00\" }",
            "`price` has no `minimum`: the least a buyer may pay",
            "write `price = { minimum = \"5.00\", suggested = \"12.00\" }` (`suggested` may be left out)",
        ),
    ] {
        check_product(
            &format!("name = \"Guide\"\nfiles = [\"guide.pdf\"]\nprice = {price}\n"),
            &format!("line 3, column 9: {problem}"),
            hint,
        );
    }
    let test = Test::store();
    test.write(
        "products/guide.toml",
        "name = \"Guide\"\nfiles = [\"guide.pdf\"]\nprice = { minimum = \"5.00\", suggested = \"12.00\" }\n",
    );
    test.shop(&["products", "check"]).success();
    let listed = test.shop(&["products", "--json"]).success().json();
    let guide = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|product| product["slug"] == "guide")
        .unwrap();
    assert_eq!(guide["price"]["amount"], 500, "{guide}");
    assert_eq!(guide["pay_what_you_want"]["suggested"], 1200, "{guide}");
}

#[test]
fn the_check_answers_in_json_also_for_broken_files() {
    let test = Test::store();
    test.write(
        "products/guide.toml",
        "name = \"Guide\"\nprice = 24.00\nfiles = [\"guide.pdf\"]\n",
    );
    let run = test.shop(&["products", "check", "--json"]).code(1);
    let answer = run.json();
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(
        answer["problems"][0]["file"], "products/guide.toml",
        "{answer}"
    );
    assert_eq!(answer["problems"][0]["line"], 2, "{answer}");
    assert!(
        answer["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`price = 24.00` is a floating-point number"),
        "{answer}"
    );
}

#[test]
fn the_store_is_found_from_any_folder_inside_it() {
    let test = Test::store();
    test.write("drafts/chapter-1/notes.md", "to do\n");
    let listing = test
        .shop_from("drafts/chapter-1", &["products", "--json"])
        .success()
        .json();
    assert_eq!(listing[0]["slug"], "example-book", "{listing}");
    test.shop_from("drafts", &["products", "check"])
        .success()
        .stdout_has(&["/store`: 1 product"]);
}

#[test]
fn the_check_says_which_files_go_unstamped() {
    let test = Test::store();
    test.write(
        "products/guide.toml",
        "name = \"Guide\"\nprice = \"29.00\"\nfiles = [\"guide.pdf\", \"guide.mobi\", \"maps.zip\"]\nstamp = true\n",
    );
    // Stamping off (the shop's default): nothing to say.
    test.write(
        "products/plain.toml",
        "name = \"Plain\"\nprice = \"9.00\"\nfiles = [\"plain.zip\"]\n",
    );
    let text = test.shop(&["products", "check"]).success().stdout();
    let notes: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("note:"))
        .collect();
    assert_eq!(
        notes,
        [
            "note: `guide` stamps buyers' copies, but `guide.mobi`, `maps.zip` are delivered \
          unstamped (shop stamps PDF and EPUB files)"
        ],
        "{text}"
    );
    let json = test.shop(&["products", "check", "--json"]).success().json();
    assert_eq!(
        json["unstamped"],
        serde_json::json!({ "guide": ["guide.mobi", "maps.zip"] }),
        "{json}"
    );
    // With the shop's default on, every product stamps.
    test.write(
        "shop.toml",
        &format!("{}\n[stamp]\ndefault = true\n", test.read("shop.toml")),
    );
    let json = test.shop(&["products", "check", "--json"]).success().json();
    assert_eq!(
        json["unstamped"],
        serde_json::json!({ "guide": ["guide.mobi", "maps.zip"], "plain": ["plain.zip"] }),
        "{json}"
    );
}

#[test]
fn the_projects_own_repository_is_an_example_store() {
    let test = Test::new();
    let root = env!("CARGO_MANIFEST_DIR");
    test.shop(&["--store", root, "products", "check"])
        .success()
        .stdout_has(&["settings and products valid"]);
    let listing = test
        .shop(&["--store", root, "products", "--json"])
        .success()
        .json();
    assert!(
        listing
            .as_array()
            .is_some_and(|products| !products.is_empty()),
        "{listing}"
    );
}

/// Prices Stripe would refuse at every purchase are refused before any
/// release: its rounding per currency and its smallest charges.
#[test]
fn amounts_stripe_cannot_charge_are_refused() {
    for (price, currency, problem, hint) in [
        (
            "5.125",
            "kwd",
            "Stripe cannot charge `5.125 KWD`: KWD amounts must end in 0",
            "round the price to `5.120` or `5.130`",
        ),
        (
            "1500.50",
            "isk",
            "Stripe cannot charge `1500.50 ISK`: ISK is charged in whole units",
            "write a whole amount, such as `1500`",
        ),
        (
            "0.10",
            "usd",
            "`0.10 USD` is below Stripe's smallest charge in USD, 0.50 USD",
            "set a price of at least `0.50`",
        ),
    ] {
        check_product(
            &format!(
                "name = \"Guide\"\nprice = \"{price}\"\ncurrency = \"{currency}\"\nfiles = [\"guide.pdf\"]\n"
            ),
            &format!("line 2, column 9: {problem}"),
            hint,
        );
    }
}

#[test]
fn bundles_list_released_products_that_are_not_bundles() {
    let test = Test::store();
    test.write("products/guide.toml", BOOK);
    test.write(
        "products/box.toml",
        "name = \"Box\"\nprice = \"35.00\"\nbundle = [\"guide\", \"nothing\", \"set\"]\n\
         [[release]]\nversion = \"1.0.0\"\ndate = 2026-12-05\ntag = \"box-v1.0.0\"\n\
         stripe_product = \"prod_1\"\nstripe_price = \"price_1\"\npayment_link = \"plink_1\"\n\
         payment_link_url = \"https://buy.stripe.com/x\"\ncontains = { guide = \"1.0.0\" }\n",
    );
    test.write(
        "products/set.toml",
        "name = \"Set\"\nprice = \"40.00\"\nbundle = [\"guide\"]\n",
    );
    test.shop(&["products", "check"]).code(1).stderr_is(
        "error: the store at `[TMP]/store` has 3 problems\n\n\
         `products/box.toml` line 3, column 20: bundle `box` lists `nothing`, which is not a product\n\
         hint: the store's products are `box`, `example-book`, `guide` and `set`\n\n\
         `products/box.toml` line 3, column 31: bundle `box` lists `set`, another bundle\n\
         hint: list the products of `set` themselves\n\n\
         `products/box.toml` line 5, column 1: release `1.0.0` gives `guide` 1.0.0, which is not a release of it\n\
         hint: this is written by `shop release`; restore the files from git (`git log -p products/`)\n\
         hint: fix each problem above, then check with `shop products check`\n",
    );
}

#[test]
fn the_check_says_what_will_break_once_and_what_was_meant() {
    let test = Test::store();
    // A product file that does not parse, a bundle listing it and a
    // mistyped product: the broken file's problem, no cascade; the typo
    // placed and answered.
    test.write(
        "products/old-roads.toml",
        "name = \"Old Roads\"\nprice = \"24,00\"\ncurrency = \"eru\"\nfiles = [\"roads.pdf\"]\n",
    );
    test.write(
        "products/box.toml",
        "name = \"The Box\"\nprice = \"30.00\"\nbundle = [\"old-roads\", \"example-bok\"]\n",
    );
    let run = test.shop(&["products", "check"]).code(1);
    let stderr = run.stderr();
    for expected in [
        "`products/old-roads.toml` line 2, column 9: `24,00` is not a price: it has a comma; write the decimals after a dot, such as `24.00`",
        "`products/old-roads.toml` line 3, column 12: `eru` is not a currency Stripe can charge in; did you mean `eur`?",
        "`products/box.toml` line 3, column 24: bundle `box` lists `example-bok`, which is not a product",
        "hint: did you mean `example-book`? (the store's products are",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} is not in\n{stderr}"
        );
    }
    assert!(!stderr.contains("lists `old-roads`"), "{stderr}");

    // Every problem of shop.toml at once, each placed and answered.
    let test = Test::store();
    let settings = test.read("shop.toml");
    test.write(
        "shop.toml",
        &settings
            .replace("[serve]\n", "[serve]\nthanks_limt = \"1/minute\"\n")
            .replacen("name = ", "currncy = \"eur\"\nname = ", 1),
    );
    let stderr = test.shop(&["products", "check"]).code(1).stderr();
    for expected in [
        "has 2 problems",
        "unknown field `currncy`, expected one of",
        "hint: did you mean `currency`?",
        "unknown field `thanks_limt` in `[serve]`",
        "hint: did you mean `thanks_limit`?",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} is not in\n{stderr}"
        );
    }

    // A store with nothing to sell is said to be one.
    let test = Test::store();
    std::fs::remove_file(test.path().join("products/example-book.toml")).unwrap();
    test.shop(&["products", "check"])
        .success()
        .stdout_has(&["warning: the store has no products: nothing is for sale\nhint: add one"]);
}
