//! The wire-protocol decoder: a frame header, then its body as a request, under the daemon's
//! limits. No input may panic or allocate beyond the announced body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcos_proto::{FrameHeader, HEADER_BYTES, Payload, Request};

fuzz_target!(|data: &[u8]| {
    let Some(head) = data.first_chunk::<HEADER_BYTES>() else {
        return;
    };
    let Ok(h) = FrameHeader::decode(head, 1 << 20) else {
        return;
    };
    let body = &data[HEADER_BYTES..];
    let body = &body[..body.len().min(h.body_len as usize)];
    if let Ok(req) = Request::decode(&h, body, 256) {
        // Walk everything a server would walk.
        match req {
            Request::Put(p) => {
                for (_, payload) in p.iter() {
                    if let Payload::Inline(b) = payload {
                        std::hint::black_box(b.len());
                    }
                }
                for i in 0..p.len() {
                    std::hint::black_box(p.parent(i));
                }
            }
            other => {
                std::hint::black_box(format!("{other:?}").len());
            }
        }
    }
});
