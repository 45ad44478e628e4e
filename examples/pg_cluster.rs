//! A throwaway PostgreSQL server for `scripts/bench` (the one the tests
//! use, `pg_cluster`): durable (fsync on), listening on
//! `127.0.0.1:<port>`; prints its URL, then runs until stdin closes.

fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: pg_cluster PORT"))?
        .parse()?;
    let cluster = pg_cluster::Cluster::start_on(Some(port), true)?;
    println!("{}", cluster.tcp_url("postgres").unwrap_or_default());
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line)? > 0 {
        line.clear();
    }
    drop(cluster);
    Ok(())
}
