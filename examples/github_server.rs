//! The local GitHub of the tests as a process, for `scripts/bench`:
//! prints its API and uploads URLs as JSON, then serves until stdin closes
//! or it is terminated. `GET <api>/_uploads` lists upload timings.

#[path = "../tests/support/github.rs"]
mod github;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let repository = args.next().unwrap_or_else(|| "author/book-assets".into());
    let token = std::env::var("GITHUB_TOKEN").unwrap_or_else(|_| "ghs_bench_token".into());
    let (owner, repo) = repository.split_once('/').expect("OWNER/NAME");
    let server = github::GitHubServer::start(owner, repo, &token).await;
    println!(
        "{}",
        serde_json::json!({"api_url": server.api_url, "uploads_url": server.uploads_url})
    );
    let _ = tokio::signal::ctrl_c().await;
    server.stop();
}
