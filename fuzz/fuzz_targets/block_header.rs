//! The block-header parser and verifier, and the warm-restart classifier: any bytes in a frame
//! are a block, an empty frame or a discarded one, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcos_core::BlockKey;
use mcos_tiers::rebuild::{Slot, classify};
use mcos_tiers::{BlockHeader, KeyCheck, verify};

fuzz_target!(|data: &[u8]| {
    let decoded = BlockHeader::decode(data);
    let slot = classify(data, 16384);
    if let Slot::Block(key, len) = slot {
        // A block the rebuild keeps decodes to the same key and length.
        let h = decoded.expect("classify kept a header that does not decode");
        assert_eq!((h.key, h.payload_len), (key, len));
        assert!(len <= 16384 && key != BlockKey::NONE);
    }
    if let Ok(h) = decoded {
        let _ = verify(data, h.key);
        let _ = verify(data, KeyCheck::Tag(h.key.tag()));
        // Round trip: what decodes re-encodes to the same first 64 bytes' meaning.
        let mut out = [0u8; 64];
        h.encode(&mut out);
        assert_eq!(BlockHeader::decode(&out).ok(), Some(h));
    }
});
