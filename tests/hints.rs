//! Every error type with advice gives it: each `impl Hint` in `src/` is
//! registered with `shop::error`, and an error of each type renders with its
//! hint as the last line, also under a context.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use shop::error::{self, Hint};

/// The short names of the types that implement `Hint` in the source.
fn implemented() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut folders = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                names.extend(impls_in(&path));
            }
        }
    }
    names
}

/// The `impl Hint for` of one file, up to its unit tests (which may have
/// types of their own, registered in the test build only).
fn impls_in(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .filter_map(|line| {
            let line = line.trim_start();
            let rest = line.strip_prefix("impl ")?;
            let (trait_path, rest) = rest.split_once(" for ")?;
            if trait_path != "Hint" && !trait_path.ends_with("::Hint") {
                return None;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            Some(name)
        })
        .collect()
}

fn short(name: &str) -> String {
    name.rsplit("::").next().unwrap().to_string()
}

/// One error of each type, as `shop` makes them.
fn samples() -> Vec<(&'static str, anyhow::Error, String)> {
    fn sample<E>(error: E) -> (&'static str, anyhow::Error, String)
    where
        E: Hint + std::error::Error + Send + Sync + 'static,
    {
        let hint = error.hint();
        let name = std::any::type_name::<E>();
        (name, anyhow::Error::new(error), hint)
    }
    let path = PathBuf::from("products/book.toml");
    vec![
        sample(shop::git::GitError::Bare),
        sample(shop::server::views::ViewError::Template {
            name: "front.html".into(),
            line: Some(3),
            message: "unexpected end of input".into(),
        }),
        sample(shop::ledger::LedgerError::Malformed {
            path: "ledger/purchases.jsonl".into(),
            line: 2,
            message: "expected value".into(),
        }),
        sample(shop::mail::MailError::Address {
            address: "reader@".into(),
            message: "no domain".into(),
        }),
        sample(shop::sync::SyncError::Git(shop::git::GitError::Bare)),
        sample(shop::post::PostError::NoSubject {
            file: "news.md".into(),
        }),
        sample(shop::stamp::StampError::Pdf {
            name: "book.pdf".into(),
            reason: "no trailer".into(),
        }),
        sample(shop::stripe::StripeError::Api(Box::new(
            shop::stripe::ApiFailure {
                status: 402,
                kind: "card_error".into(),
                code: Some("card_declined".into()),
                decline_code: None,
                message: "Your card was declined.".into(),
                param: None,
                path: "/v1/refunds".into(),
                key_name: "STRIPE_SECRET_KEY".into(),
                attempts: 1,
            },
        ))),
        sample(shop::stripe::webhook::SignatureError::Mismatch),
        sample(shop::github::GitHubError::Setup("no token".into())),
        sample(shop::release::ReleaseError::VersionNotNewer {
            version: "1.0.0".into(),
            latest: "1.1.0".into(),
        }),
        sample(shop::store::disk::Refusal::Missing { path: path.clone() }),
        sample(shop::store::StoreError::NotAStore { root: ".".into() }),
        sample(shop::state::StateError::Write {
            path: ".shop/state.db".into(),
            message: "disk full".into(),
        }),
        sample(shop::secret::SecretError::Empty {
            name: "STRIPE_SECRET_KEY".into(),
        }),
        sample(shop::notify::NotifyError::Io {
            path,
            source: std::io::Error::other("disk full"),
        }),
        sample(shop::commands::UsageError::new(
            "`--port` is not an option of `shop serve`",
            "give the address with `--listen 127.0.0.1:8080`",
        )),
    ]
}

#[test]
fn every_hint_is_registered_and_renders() {
    let registered: BTreeSet<String> = error::registered().map(|r| short((r.name)())).collect();
    assert_eq!(
        registered,
        implemented(),
        "each `impl Hint for T` needs `inventory::submit!(crate::error::Registered::of::<T>())` beside it"
    );

    let samples = samples();
    let sampled: BTreeSet<String> = samples.iter().map(|(name, ..)| short(name)).collect();
    assert_eq!(sampled, registered, "a sample of each registered type");
    for (name, error, hint) in samples {
        assert!(!hint.trim().is_empty(), "{name} gives an empty hint");
        assert!(!hint.starts_with("hint:"), "{name}: {hint}");
        let rendered = error::render(&error.context("cannot go on"));
        let last = rendered.lines().last().unwrap();
        assert_eq!(last, format!("hint: {hint}"), "{name}: {rendered}");
        assert_eq!(rendered.matches("hint:").count(), 1, "{name}: {rendered}");
    }
}
