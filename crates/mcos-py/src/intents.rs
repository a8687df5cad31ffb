//! The one intent an `intent(...)` call carries, from its keyword arguments (the same for the
//! client and the embedded node).

use crate::errors::InvalidArgument;
use pyo3::PyResult;

/// What `intent(keys, ...)` asks for each key.
#[derive(Copy, Clone, Debug)]
pub enum IntentArg {
    /// Govern the blocks by this priority class.
    Class(u8),
    /// Expect this many more uses of each block.
    ExpectReuse(u32),
    /// The keys are positions `first_position..` of `sequence` (drives sequential prefetch).
    Sequence { sequence: u32, first_position: u32 },
    /// The blocks belong to a queued request.
    Queued,
}

impl IntentArg {
    pub fn parse(
        priority_class: Option<u8>,
        expect_reuse: Option<u32>,
        sequence: Option<u32>,
        first_position: u32,
        queued: bool,
    ) -> PyResult<IntentArg> {
        let given = [
            priority_class.is_some(),
            expect_reuse.is_some(),
            sequence.is_some(),
            queued,
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if given != 1 {
            return Err(InvalidArgument::new_err(
                "intent takes exactly one of priority_class=, expect_reuse=, sequence= (with \
                 first_position=) or queued=True",
            ));
        }
        Ok(match (priority_class, expect_reuse, sequence) {
            (Some(c), _, _) => IntentArg::Class(c),
            (_, Some(n), _) => IntentArg::ExpectReuse(n),
            (_, _, Some(s)) => IntentArg::Sequence {
                sequence: s,
                first_position,
            },
            _ => IntentArg::Queued,
        })
    }
}
