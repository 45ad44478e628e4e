//! `shop init`: a new store is a valid git repository with one commit.

use crate::harness::Test;

fn commits(path: &std::path::Path) -> Vec<git2::Oid> {
    let repo = git2::Repository::open(path).expect("a git repository");
    let mut walk = repo.revwalk().unwrap();
    walk.push_head().unwrap();
    walk.collect::<Result<_, _>>().unwrap()
}

#[test]
fn init_makes_a_valid_store_with_one_commit() {
    let test = Test::new();
    test.shop(&[
        "init",
        "books",
        "--name",
        "Ada's \"Best\" Books",
        "--currency",
        "EUR",
    ])
    .success()
    .stderr_has(&["Made a store at", "example-book"]);
    let store = test.root().join("books");
    assert_eq!(commits(&store).len(), 1);

    let repo = git2::Repository::open(&store).unwrap();
    let head = repo.head().unwrap();
    assert_eq!(head.shorthand(), Ok("main"));
    let tree = head.peel_to_tree().unwrap();
    for path in [
        "shop.toml",
        "products/example-book.toml",
        "purchases/README.md",
        "notices/README.md",
        ".gitignore",
    ] {
        assert!(
            tree.get_path(std::path::Path::new(path)).is_ok(),
            "{path} is not committed"
        );
    }
    let statuses = repo.statuses(None).unwrap();
    assert_eq!(statuses.len(), 0, "the new store's work tree is not clean");

    let gitignore = std::fs::read_to_string(store.join(".gitignore")).unwrap();
    assert!(
        gitignore.lines().any(|line| line == ".shop/"),
        "{gitignore}"
    );

    let check = test
        .shop(&["--store", store.to_str().unwrap(), "products", "check"])
        .success();
    check.stdout_has(&["1 product (0 released), settings and products valid"]);
    let listing = test
        .shop(&["--store", store.to_str().unwrap(), "products", "--json"])
        .success()
        .json();
    assert_eq!(listing[0]["slug"], "example-book");
    assert_eq!(listing[0]["price"]["amount"], 1900);
    assert_eq!(listing[0]["price"]["currency"], "eur");
    let settings = std::fs::read_to_string(store.join("shop.toml")).unwrap();
    assert!(settings.contains(r#"Ada's "Best" Books"#), "{settings}");
}

#[test]
fn init_comments_every_setting() {
    let test = Test::store();
    let settings = test.read("shop.toml");
    for key in [
        "name",
        "base_url",
        "support_email",
        "currency",
        "download_limit",
        "link_lifetime",
        "repository",
        "transport",
        "from",
        "outbox",
        "host",
        "port",
        "security",
        "user",
        "command",
    ] {
        let line = settings
            .lines()
            .position(|line| line.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("`{key}` is missing from shop.toml"));
        let above = settings.lines().nth(line - 1).unwrap();
        assert!(
            above.starts_with('#') || settings.lines().nth(line - 2).unwrap().starts_with('#'),
            "`{key}` has no comment above it"
        );
    }
}

#[test]
fn init_refuses_an_existing_store_and_changes_nothing() {
    let test = Test::store();
    test.write("shop.toml", "# mine\n");
    let before = commits(test.path());
    test.shop(&["init"]).code(1).stderr_has(&[
        "is already a shop store",
        "hint: `shop init` never overwrites",
    ]);
    assert_eq!(test.read("shop.toml"), "# mine\n");
    assert_eq!(commits(test.path()), before);
}

#[test]
fn init_refuses_a_folder_with_a_product_of_the_same_name() {
    let test = Test::new();
    test.write("products/example-book.toml", "name = \"Mine\"\n");
    test.shop(&["init"])
        .code(1)
        .stderr_has(&["already has `products/example-book.toml`", "hint:"]);
    assert_eq!(test.read("products/example-book.toml"), "name = \"Mine\"\n");
    assert!(
        !test.path().join("shop.toml").exists(),
        "init wrote part of a store"
    );
}

#[test]
fn init_in_an_existing_repository_commits_only_its_own_files() {
    let test = Test::new();
    let repo = git2::Repository::init(test.path()).unwrap();
    test.write("draft.md", "unrelated work\n");
    let mut index = repo.index().unwrap();
    index.add_path(std::path::Path::new("draft.md")).unwrap();
    index.write().unwrap();

    test.shop(&["init"]).success();
    let head = repo.head().unwrap().peel_to_tree().unwrap();
    assert!(head.get_path(std::path::Path::new("shop.toml")).is_ok());
    assert!(
        head.get_path(std::path::Path::new("draft.md")).is_err(),
        "the author's staged file was committed"
    );
    // The author's work is still staged.
    let status = repo.status_file(std::path::Path::new("draft.md")).unwrap();
    assert!(status.contains(git2::Status::INDEX_NEW), "{status:?}");
}

#[test]
fn a_name_on_two_lines_is_a_usage_error() {
    Test::new()
        .shop(&["init", "--name", "a\nb"])
        .code(2)
        .stderr_has(&["cannot be a shop name", "hint:"]);
}
