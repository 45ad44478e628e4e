//! The handlers in-process, through the same route table `shop serve`
//! answers with (`warp::test`): what needs no network, no Stripe and no
//! second process is tested here; the tests under `tests/` run the binary.

use std::sync::Arc;

use warp::http::StatusCode;

use super::{App, Files, routes, views};
use crate::secret::Secret;
use crate::state::Db;
use crate::store::{Overrides, Store};
use crate::stripe;
use crate::tokens::Key;

/// A fresh store (as `shop init` writes it) and a server's state.
struct Fixture {
    _dir: tempfile::TempDir,
    app: Arc<App>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let settings = include_str!("../commands/init/shop.toml")
        .replace("@NAME@", "\"Old Roads Press\"")
        .replace("@FROM@", "\"Old Roads Press <help@example.com>\"")
        .replace("@CURRENCY@", "eur");
    std::fs::write(dir.path().join("shop.toml"), settings).unwrap();
    std::fs::create_dir_all(dir.path().join("products")).unwrap();
    let store = Store::open(dir.path(), &Overrides::default()).unwrap();
    let views = views::Views::load(dir.path()).unwrap();
    let db = Db::sqlite(&dir.path().join(".shop/state.db")).unwrap();
    // Nothing here reaches Stripe: a port nothing listens on.
    let stripe = stripe::Client::new(
        "http://127.0.0.1:9",
        Secret::new("STRIPE_SECRET_KEY", "sk_test_in_process").unwrap(),
    )
    .unwrap();
    let key = Key::new(Secret::new("SHOP_TOKEN_SECRET", "k".repeat(32)).unwrap());
    let app = App::new(
        store,
        stripe,
        vec![key],
        None,
        db,
        Files::Local(dir.path().join(".shop/files")),
        views,
    );
    Fixture {
        _dir: dir,
        app: Arc::new(app),
    }
}

impl Fixture {
    async fn get(&self, path: &str) -> warp::http::Response<bytes::Bytes> {
        warp::test::request()
            .path(path)
            .reply(&routes(self.app.clone()))
            .await
    }
}

fn body(response: &warp::http::Response<bytes::Bytes>) -> String {
    String::from_utf8_lossy(response.body()).into_owned()
}

#[tokio::test]
async fn every_answer_refuses_sniffing_and_framing() {
    let fixture = fixture();
    for path in ["/robots.txt", "/lost", "/d/forged", "/nothing/here"] {
        let response = fixture.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_forged_download_link_is_refused_with_the_way_to_a_new_one() {
    let fixture = fixture();
    let response = fixture.get("/d/forged-token/guide.pdf").await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = body(&response);
    // The refusal template, in the layout: no file, a way out.
    assert!(
        page.contains("<a href=\"/lost\">Get a new link by email</a>"),
        "{page}"
    );
    assert!(
        page.contains("<meta name=\"robots\" content=\"noindex\">"),
        "{page}"
    );
    assert!(!page.contains("guide.pdf"), "{page}");
}

#[tokio::test]
async fn the_lost_form_refuses_an_address_that_is_not_one_and_asks_again() {
    let fixture = fixture();
    let response = warp::test::request()
        .method("POST")
        .path("/lost")
        .header("origin", "http://127.0.0.1:8080")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=not-an-address")
        .reply(&routes(fixture.app.clone()))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = body(&response);
    assert!(
        page.contains("<p role=\"status\">Please enter the email address you bought with.</p>"),
        "{page}"
    );
    assert!(page.contains("name=\"email\""), "{page}");
    // Nothing was queued for anyone.
    assert!(fixture.app.db.mail_queue().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unsubscribe_link_that_is_not_ours_stops_nothing() {
    let fixture = fixture();
    let response = fixture.get("/unsubscribe/not-a-token").await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(!body(&response).contains("<form method=\"post\">"));
    assert!(fixture.app.db.opt_outs().await.unwrap().is_empty());
}
