//! `meshlog-upstream`: the small HTTP service that demos, tests and benchmarks put behind Envoy.
//!
//! `/status/<code>` (any method) answers with that status; any other path answers 200 `ok`. Usage:
//! `meshlog-upstream [--listen 127.0.0.1:8080]`. Prints `listening on <addr>` once bound, so
//! callers may pass port 0 and read the port back.

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::any;

async fn status(Path(code): Path<u16>) -> (StatusCode, &'static str) {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        "status\n",
    )
}

async fn ok() -> &'static str {
    "ok\n"
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:8080".to_owned();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            other => {
                eprintln!("usage: meshlog-upstream [--listen ADDR]; unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let app = Router::new()
        .route("/status/{code}", any(status))
        .fallback(ok);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
