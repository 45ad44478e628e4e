//! An audience of the author's own: following with double opt-in through
//! the real server and its mail, leaving by one click, `shop followers`
//! (list, CSV out, a list brought in with consent), `shop post` to
//! followers and buyers once each, the posts on the store and in its Atom
//! feed, and the list kept in git by `shop sync`.

use reqwest::StatusCode;

use crate::support::books::first_page_text;
use crate::support::served::{Served, TOKEN_SECRET, link, mails_to};

fn followers(served: &Served) -> Vec<shop::state::Follower> {
    served.runtime.block_on(served.state().followers()).unwrap()
}

#[test]
fn a_reader_follows_confirms_by_the_mailed_link_and_leaves_by_one_click() {
    let served = Served::start();
    let front = served.body(served.get("/"));
    assert!(front.contains("action=\"&#x2f;follow\"") || front.contains("action=\"/follow\""));
    assert!(
        front.contains("rel=\"alternate\" type=\"application/atom+xml\""),
        "{front}"
    );

    let (status, answer) = served.post_form("/follow", &[("email", "Ann@Example.com")]);
    assert_eq!(status, StatusCode::OK);
    assert!(answer.contains("Check your email"), "{answer}");
    // Asked again within the hour: the same answer, no second mail.
    let (status, again) = served.post_form("/follow", &[("email", "ann@example.com")]);
    assert_eq!(
        (status, again.contains("Check your email")),
        (StatusCode::OK, true)
    );
    assert_eq!(served.queued("follow").len(), 1);
    // From another site's page: refused.
    let (refused, _) = served.post_form_from(
        "/follow",
        "https://elsewhere.example",
        &[("email", "ben@example.com")],
    );
    assert_eq!(refused, StatusCode::FORBIDDEN);

    let mut mail = String::new();
    served.wait_for("the confirmation mail", || {
        mail = mails_to(&served, "ann@example.com", "Confirm you want news")
            .pop()
            .unwrap_or_default();
        !mail.is_empty()
    });
    assert!(
        !followers(&served)[0].following(),
        "not before the link is opened"
    );
    let confirm = link(&mail, &format!("{}/follow/confirm/", served.url));
    // Opening the link (a mail scanner does) confirms nothing: it is a button.
    let page = served.get(&confirm);
    assert_eq!(page.status(), StatusCode::OK);
    assert!(served.body(page).contains("method=\"post\""));
    assert!(!followers(&served)[0].following());
    let path = confirm.trim_start_matches(&served.url);
    let (status, done) = served.post_form(path, &[]);
    assert_eq!(status, StatusCode::OK);
    assert!(
        done.contains("You follow") && done.contains("ann@example.com"),
        "{done}"
    );
    let follower = &followers(&served)[0];
    assert!(follower.following());
    assert_eq!(follower.email, "ann@example.com");
    assert!(follower.consent.contains("confirmed the mailed link"));

    // A buyer is asked on the thank-you page, their address filled in
    // (and the page lets the browser name its origin to the form's POST).
    let page = served.buy("dee@example.com");
    let thanks = served.get(&format!("/thanks?session_id={}", served.session_of(&page)));
    assert_eq!(thanks.headers()["referrer-policy"], "same-origin");
    let thanks = served.body(thanks);
    assert!(
        thanks.contains("value=\"thanks\"") && thanks.contains("value=\"dee@example.com\""),
        "{thanks}"
    );

    // A forged, an expired, or another purpose's token is refused.
    let key = shop::tokens::Key::new(
        shop::secret::Secret::new("SHOP_TOKEN_SECRET", TOKEN_SECRET).unwrap(),
    );
    let sign = |subject: &str, expires: i64| {
        shop::tokens::sign(
            &key,
            &shop::tokens::Claims {
                purchase: subject.to_owned(),
                expires,
            },
        )
    };
    let expired = format!(
        "/follow/confirm/{}",
        sign(&format!("follow:{}", follower.id), 1_000)
    );
    assert_eq!(served.get(&expired).status(), StatusCode::GONE);
    let other = format!(
        "/follow/confirm/{}",
        sign(&format!("withdraw:{}", follower.id), 4_000_000_000)
    );
    assert_eq!(served.get(&other).status(), StatusCode::FORBIDDEN);
    assert_eq!(
        served.get(&format!("{path}x")).status(),
        StatusCode::FORBIDDEN
    );

    // Listed for the author, kept in git by `shop sync`.
    let listed = served.test.shop(&["followers", "--json"]).success().json();
    assert_eq!(listed[0]["email"], "ann@example.com");
    served
        .test
        .shop(&["sync"])
        .success()
        .stderr_has(&["kept 1 follower in audience/followers.jsonl"]);
    let kept = served.test.read("audience/followers.jsonl");
    assert!(kept.contains("\"email\":\"ann@example.com\""), "{kept}");
    let csv = served.test.shop(&["followers", "--csv"]).success().stdout();
    assert!(
        csv.starts_with("email,asked,confirmed,left,source,consent\n"),
        "{csv}"
    );
    assert!(csv.contains("ann@example.com,"), "{csv}");

    // A post reaches her with a one-click way out, which works.
    served.test.write(
        "news.md",
        "---\nsubject: Something new\n---\nA **new** book is coming.\n",
    );
    served
        .test
        .shop(&["post", "news.md"])
        .success()
        .stderr_has(&["sent “Something new” to 1 address"]);
    let mut post = String::new();
    served.wait_for("the post", || {
        post = mails_to(&served, "ann@example.com", "Subject: Something new")
            .pop()
            .unwrap_or_default();
        !post.is_empty()
    });
    assert!(
        post.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{post}"
    );
    assert!(post.contains("List-Id: <posts.127.0.0.1>"), "{post}");
    let unsubscribe = link(&post, &format!("{}/unsubscribe/", served.url));
    let one_click = served
        .runtime
        .block_on(
            served
                .http
                .post(&unsubscribe)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("List-Unsubscribe=One-Click")
                .send(),
        )
        .unwrap();
    assert_eq!(one_click.status(), StatusCode::OK);
    assert!(!followers(&served)[0].following());
    served
        .test
        .write("more.md", "---\nsubject: More\n---\nAgain.\n");
    served
        .test
        .shop(&["post", "more.md"])
        .success()
        .stderr_has(&["sent “More” to 0 addresses"]);
}

#[test]
fn a_post_goes_once_to_each_address_and_is_on_the_store_and_in_the_feed() {
    let served = Served::start();
    // A list the author brings, with its consent; one address twice.
    served.test.write(
        "list.csv",
        "name,email,date\nAnn,ann@example.com,2026-10-03\nBen,\"ben@example.com\",\nAnn again,ANN@example.com,\n",
    );
    served
        .test
        .shop(&[
            "followers",
            "import",
            "list.csv",
            "--consent",
            "signed up at the fair",
        ])
        .success()
        .stderr_has(&["imported 2 followers (1 already known, left as they were)"]);
    served
        .test
        .write("bad.csv", "email\nann@example.com\nnot-an-address\n");
    served
        .test
        .shop(&["followers", "import", "bad.csv", "--consent", "x"])
        .code(1)
        .stderr_has(&["`bad.csv` line 3", "nothing was imported"]);
    // Ann also buys (one message, as a follower); Cy buys and does not
    // follow (under opt-in, no post).
    served.buy("ann@example.com");
    served.buy("cy@example.com");
    served.test.write(
        "news.md",
        "---\nsubject: The second book\nslug: second-book\ndate: 2026-12-01\n---\nIt is **out** & signed.\n",
    );
    let planned = served
        .test
        .shop(&["post", "news.md", "--to", "all", "--dry-run"])
        .success();
    assert_eq!(
        planned.stdout(),
        "ann@example.com  (follower)\nben@example.com  (follower)\n"
    );
    // `[audience] buyers = "all"`: Cy too (buyers are the ledger's).
    served.test.shop(&["sync"]).success();
    let settings = served.test.read("shop.toml");
    served.test.write(
        "shop.toml",
        &format!("{settings}\n[audience]\nbuyers = \"all\"\n"),
    );
    let planned = served
        .test
        .shop(&["post", "news.md", "--to", "buyers", "--dry-run"])
        .success()
        .stdout();
    // In the ledger's order: two purchases of the same second, by id.
    let mut lines: Vec<&str> = planned.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["ann@example.com  (buyer)", "cy@example.com  (buyer)"]
    );
    served.test.write("shop.toml", &settings);

    served
        .test
        .shop(&["post", "news.md", "--to", "all"])
        .success()
        .stderr_has(&["sent “The second book” to 2 addresses (0 already sent, 0 opted out)"]);
    served
        .test
        .shop(&["post", "news.md", "--to", "all"])
        .success()
        .stderr_has(&["sent “The second book” to 0 addresses (2 already sent, 0 opted out)"]);
    for email in ["ann@example.com", "ben@example.com"] {
        assert_eq!(
            mails_to(&served, email, "Subject: The second book").len(),
            1
        );
    }
    assert!(mails_to(&served, "cy@example.com", "The second book").is_empty());
    let record = served.test.read("posts/2026-12-01-second-book.jsonl");
    assert_eq!(record.lines().count(), 2, "{record}");
    assert!(
        served
            .test
            .read("posts/2026-12-01-second-book.md")
            .contains("subject: The second book")
    );
    // Another post with the same slug is refused, not mixed in.
    served.test.write(
        "other.md",
        "---\nsubject: Something else\nslug: second-book\n---\nNo.\n",
    );
    served
        .test
        .shop(&["post", "other.md"])
        .code(1)
        .stderr_has(&["a different post `second-book` was sent before", "hint:"]);

    // On the store, and in the feed beside the release.
    let list = served.body(served.get("/posts"));
    assert!(
        list.replace("&#x2f;", "/").contains("/posts/second-book"),
        "{list}"
    );
    let page = served.get("/posts/second-book");
    assert_eq!(page.status(), StatusCode::OK);
    let page = served.body(page);
    assert!(page.contains("<strong>out</strong> &amp; signed"), "{page}");
    assert_eq!(served.get("/posts/nothing").status(), StatusCode::NOT_FOUND);
    let feed = served.get("/feed.xml");
    assert_eq!(
        feed.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let feed = feed_rs::parser::parse(served.body(feed).as_bytes()).expect("a valid Atom feed");
    let titles: Vec<String> = feed
        .entries
        .iter()
        .map(|entry| entry.title.as_ref().unwrap().content.clone())
        .collect();
    assert_eq!(titles, ["The Field Guide 1.0.0", "The second book"]);
    let post = &feed.entries[1];
    assert_eq!(
        post.links[0].href,
        format!("{}/posts/second-book", served.url)
    );
    assert!(
        post.content
            .as_ref()
            .unwrap()
            .body
            .as_deref()
            .unwrap()
            .contains("<strong>out</strong>")
    );
    // A private post is mailed, never shown.
    served
        .test
        .write("private.md", "---\nsubject: Just you\n---\nThanks.\n");
    served
        .test
        .shop(&["post", "private.md", "--private"])
        .success();
    assert_eq!(served.get("/posts/private").status(), StatusCode::NOT_FOUND);

    // The list in git rebuilds a lost state as it was (ids, dates,
    // consent: the links already mailed still work).
    served.test.shop(&["sync"]).success();
    let before = served.test.shop(&["followers", "--json"]).success().json();
    assert_eq!(before.as_array().unwrap().len(), 2);
    let mut served = served;
    served.stop_server();
    if !crate::support::served::on_postgres() {
        for file in ["state.db", "state.db-wal", "state.db-shm"] {
            let _ = std::fs::remove_file(served.test.path().join(".shop").join(file));
        }
        served
            .test
            .shop(&["followers", "import", "audience/followers.jsonl"])
            .success()
            .stderr_has(&["imported 2 followers (0 already known"]);
        assert_eq!(
            served.test.shop(&["followers", "--json"]).success().json(),
            before
        );
    }
    served
        .test
        .shop(&[
            "followers",
            "import",
            "audience/followers.jsonl",
            "--consent",
            "x",
        ])
        .code(1)
        .stderr_has(&["keeps each follower's consent", "hint:"]);
}

#[test]
fn a_free_sample_goes_to_an_address_as_a_stamped_copy_and_follows_only_when_ticked() {
    let pdf = crate::support::books::pdf(3);
    let served = Served::start_selling(&[("guide.pdf", pdf.clone())], |test| {
        test.write(
            "products/guide.toml",
            "name = \"The Field Guide: a sample\"\nprice = \"free\"\nfiles = [\"guide.pdf\"]\n\
             download_limit = 3\nstamp = true\n",
        );
    });
    // Released with no Stripe object at all.
    let product = served.test.read("products/guide.toml");
    assert!(
        product.contains("[[release]]")
            && !product.contains("stripe_")
            && !product.contains("payment_link"),
        "{product}"
    );
    served
        .test
        .shop(&["products"])
        .success()
        .stdout_has(&["free (sample)"]);
    served
        .test
        .shop(&["checkout", "guide"])
        .code(1)
        .stderr_has(&["`guide` is free", "hint: "]);

    // The front page asks for an address, not money; /buy goes to the page.
    let front = served.body(served.get("/"));
    assert!(
        front.contains("Get it free") && !front.contains("href=\"/buy/guide\""),
        "{front}"
    );
    assert!(front.contains(">Free<"), "{front}");
    let buy = served.get("/buy/guide");
    assert_eq!(
        (buy.status(), buy.headers()["location"].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/p/guide")
    );

    let (status, answer) = served.post_form(
        "/sample/guide",
        &[("email", "Eve@Example.com"), ("follow", "yes")],
    );
    assert_eq!(status, StatusCode::OK);
    assert!(answer.contains("Check your email"), "{answer}");
    // Asked again within the hour, or from another site: nothing more.
    let (status, _) = served.post_form("/sample/guide", &[("email", "eve@example.com")]);
    assert_eq!(status, StatusCode::OK);
    let (refused, _) = served.post_form_from(
        "/sample/guide",
        "https://elsewhere.example",
        &[("email", "mallory@example.com")],
    );
    assert_eq!(refused, StatusCode::FORBIDDEN);
    let (missing, _) = served.post_form("/sample/nothing", &[("email", "eve@example.com")]);
    assert_eq!(missing, StatusCode::NOT_FOUND);
    assert_eq!(served.queued("receipt"), ["eve@example.com"]);
    assert!(served.queued("follow").is_empty(), "one mail, not two");

    let mut mail = String::new();
    served.wait_for("the sample's mail", || {
        mail = mails_to(&served, "eve@example.com", "free from")
            .pop()
            .unwrap_or_default();
        !mail.is_empty()
    });
    let page = link(&mail, &format!("{}/d/", served.url));
    let page = page.trim_start_matches(&served.url).to_owned();
    let html = served.body(served.get(&page));
    assert!(
        html.contains("guide.pdf") && !html.contains("/withdraw/"),
        "nothing was paid, so nothing to withdraw from: {html}"
    );
    let copy = served.runtime.block_on(async {
        let response = served
            .http
            .get(format!("{}{page}/guide.pdf", served.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.bytes().await.unwrap().to_vec()
    });
    assert!(copy.len() > pdf.len() && copy.starts_with(&pdf));
    let text = first_page_text(&copy);
    assert!(text.contains("Licensed to eve@example.com"), "{text}");
    // Counted as any purchase's download: one whole copy.
    assert_eq!(
        served.usage(&page, "guide", "1.0.0", "guide.pdf").bytes,
        copy.len() as u64
    );

    // The follow box was ticked: the same mail asks to confirm, and only
    // the button makes a follower.
    let asked = followers(&served);
    assert_eq!(asked.len(), 1);
    assert!(!asked[0].following() && asked[0].source == "sample:guide");
    let confirm = link(&mail, &format!("{}/follow/confirm/", served.url));
    let (status, _) = served.post_form(confirm.trim_start_matches(&served.url), &[]);
    assert_eq!(status, StatusCode::OK);
    assert!(followers(&served)[0].following());

    // Unticked: the sample, and no follower.
    served.post_form("/sample/guide", &[("email", "fay@example.com")]);
    served.wait_for("the second sample's mail", || {
        !mails_to(&served, "fay@example.com", "free from").is_empty()
    });
    let fay = mails_to(&served, "fay@example.com", "free from")
        .pop()
        .unwrap();
    assert!(!fay.contains("/follow/confirm/"), "{fay}");
    assert_eq!(followers(&served).len(), 1);

    // In the ledger as samples, and in the report apart from sales.
    served
        .test
        .shop(&["sync"])
        .success()
        .stdout_has(&["2 free samples; committed"]);
    let samples = served.test.read("purchases/samples.jsonl");
    assert_eq!(samples.lines().count(), 2, "{samples}");
    assert!(
        samples
            .lines()
            .all(|line| line.contains("\"status\":\"sample\"") && line.contains("\"amount\":0")),
        "{samples}"
    );
    served
        .test
        .shop(&["sync"])
        .success()
        .stderr_has(&["the ledger is up to date"]);
    let report = served.test.shop(&["report"]).success().stdout();
    let header: Vec<&str> = report.lines().next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = report.lines().nth(1).unwrap().split_whitespace().collect();
    let column = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!((column("COUNT"), column("SAMPLES")), ("0", "2"), "{report}");
}

#[test]
fn buyers_who_tick_checkouts_box_hear_posts_and_only_a_us_account_may_ask() {
    let served = Served::start_with_store(&[], |test| {
        let settings = test.read("shop.toml");
        test.write(
            "shop.toml",
            &format!("{settings}\n[audience]\ncheckout_consent = true\n"),
        );
    });
    // The sandbox's account is in the US: the link asks, and the test
    // checkout shows the box, unticked.
    let link = served.payment_link();
    let checkout = served.checkout_page(&link);
    let page = served.body(served.get(&checkout));
    assert!(
        page.contains("name=\"promotions\"") && !page.contains("checked"),
        "{page}"
    );
    for (email, ticked) in [("una@example.com", true), ("val@example.com", false)] {
        let checkout = served.checkout_page(&link);
        let mut fields = vec![("email", email), ("card", "4242 4242 4242 4242")];
        if ticked {
            fields.push(("promotions", "opt_in"));
        }
        assert_eq!(
            served.post_checkout(&checkout, &fields).status(),
            StatusCode::SEE_OTHER
        );
    }
    served.test.shop(&["sync"]).success();
    let ledger = served.test.ledger_lines();
    let answer = |email: &str| {
        ledger
            .iter()
            .find(|line| line["email"] == email)
            .map(|line| line["promotions"].clone())
            .unwrap()
    };
    assert_eq!(
        (answer("una@example.com"), answer("val@example.com")),
        (serde_json::json!("opt_in"), serde_json::json!("opt_out"))
    );
    // Under opt-in, the box counts as following for posts to buyers.
    served.test.write(
        "news.md",
        "---\nsubject: Signed copies\nslug: signed\ndate: 2026-12-02\n---\nSigned.\n",
    );
    served
        .test
        .shop(&["post", "news.md", "--to", "buyers", "--dry-run"])
        .success()
        .stdout_is("una@example.com  (buyer)\n");

    // An account outside the US: Stripe offers the box to US accounts
    // only, and the release that would ask is refused, with what to do.
    served.runtime.block_on(served.sandbox().control(
        reqwest::Method::POST,
        "settings",
        serde_json::json!({"country": "DE"}),
    ));
    let build = served.test.root().join("build");
    let mut args = vec!["release", "guide", "1.1.0"];
    let files: Vec<String> = ["guide.pdf", "guide.epub"]
        .iter()
        .map(|name| build.join(name).to_str().unwrap().to_owned())
        .collect();
    args.extend(files.iter().map(String::as_str));
    served.test.shop(&args).code(1).stderr_has(&[
        "Stripe refused to ask buyers for their consent to news",
        "only available to accounts in the United States",
        "hint: remove `checkout_consent`",
    ]);
    assert!(!served.test.read("products/guide.toml").contains("1.1.0"));
}
