//! Prints `BlockKey::chain_all` keys as the Python package's `block_keys` returns them
//! (16 bytes little-endian, hex), for checking the two sides agree:
//! `cargo run -p mcos-client --example chain_keys -- MODEL BLOCK_TOKENS TOKEN...`.

use mcos_core::{BlockKey, Namespace};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(model), Some(bt)) = (args.first(), args.get(1).and_then(|s| s.parse().ok())) else {
        eprintln!("usage: chain_keys MODEL BLOCK_TOKENS TOKEN...");
        std::process::exit(2);
    };
    let tokens: Vec<u32> = args[2..].iter().filter_map(|t| t.parse().ok()).collect();
    for k in BlockKey::chain_all(&Namespace::for_model(model), &tokens, bt) {
        let hex: String =
            k.0.to_le_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
        println!("{hex}");
    }
}
