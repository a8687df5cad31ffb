//! `mcosd`: the MCOS memory service (one node served over a Unix socket, TCP and HTTP metrics).
//!
//! ```sh
//! mcosd [--config node.toml] [--socket PATH] [--listen 127.0.0.1:7070] [--metrics 127.0.0.1:9464]
//! ```

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = mcos_server::ServeArgs::parse();
    match mcos_server::serve_main(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcosd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
