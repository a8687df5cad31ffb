//! Reproduces libCacheSim's own eviction test (`test/test_evictionAlgo.c` in
//! github.com/1a1a11a/libCacheSim, commit aa0fc40) on the CloudPhysics sample it replays
//! (`shared/traces/libcachesim-cloudphysics/SOURCE.md`): object sizes, byte capacities from
//! 128 MiB to 1 GiB in steps of 128 MiB, no warm-up, and exact miss counts and missed bytes per
//! algorithm. Where MCOS follows libCacheSim's variant the figures must match to the request and
//! the byte; where MCOS deliberately differs ([`PINNED`]) its own figures are pinned and the reason
//! is given. The trace is read where it is staged, never copied into the repository; without it the
//! test says why and passes, except under `CI=true`, where the trace must be there.

use std::path::PathBuf;

use mcos_workload::objsim::ObjSimulator;
use mcos_workload::objtrace::ObjFormat;
use mcos_workload::simulate::Capacity;

const MIB: u64 = 1 << 20;
const REQUESTS: u64 = 113_872;
const REQUEST_BYTES: u64 = 4_368_040_448;

/// (MCOS policy spec, libCacheSim's name, miss counts, missed bytes) at 128 MiB .. 1 GiB, copied
/// from libCacheSim's test; the spec sets libCacheSim's parameters for that test.
type Expected = (&'static str, &'static str, [u64; 8], [u64; 8]);

const EXACT: &[Expected] = &[
    (
        "lru",
        "LRU",
        [93374, 89783, 83572, 81722, 72494, 72104, 71972, 71704],
        [
            4214303232, 4061242368, 3778040320, 3660569600, 3100927488, 3078128640, 3075403776,
            3061662720,
        ],
    ),
    (
        "fifo",
        "FIFO",
        [93403, 89386, 84387, 84025, 72498, 72228, 72182, 72140],
        [
            4213112832, 4052646400, 3829170176, 3807412736, 3093146112, 3079525888, 3079210496,
            3077547520,
        ],
    ),
    (
        "clock",
        "Clock",
        [93313, 89775, 83411, 81328, 74815, 72283, 71927, 64456],
        [
            4213887488, 4064512000, 3762650624, 3644467200, 3256760832, 3091688448, 3074241024,
            2697378816,
        ],
    ),
    (
        "sieve",
        "Sieve",
        [91699, 86720, 78578, 76707, 69945, 66221, 64445, 64376],
        [
            4158632960, 3917211648, 3536227840, 3455379968, 3035580416, 2801699328, 2699456000,
            2696345600,
        ],
    ),
    (
        "s3fifo:small=0.1,ghost=0.9,threshold=2",
        "S3-FIFO",
        [89307, 82387, 77041, 76791, 71300, 70343, 70455, 70355],
        [
            4040718336, 3703628800, 3353047552, 3282235904, 3038256128, 2980646912, 2984458752,
            2979649536,
        ],
    ),
    (
        "slru:segments=5",
        "SLRU (n-seg=5)",
        [89624, 86725, 82781, 80203, 75388, 65645, 59035, 56063],
        [
            4123085312, 3915534848, 3690704896, 3493027840, 3174708736, 2661464064, 2507604992,
            2439981056,
        ],
    ),
    (
        "arc",
        "ARC",
        [90252, 85861, 78168, 74297, 67381, 65685, 64439, 64772],
        [
            4068098560, 3821026816, 3525644800, 3296890368, 2868538880, 2771180032, 2699484672,
            2712971264,
        ],
    ),
    (
        "qdlp:small=0.1,ghost=0.9,threshold=1,bits=2",
        "QDLP-FIFO",
        [88746, 80630, 76450, 71638, 67380, 65680, 66125, 64417],
        [
            4008265728, 3625704960, 3330610176, 3099731456, 2868538880, 2771098112, 2734977024,
            2697751552,
        ],
    ),
    (
        "lfu",
        "LFU",
        [91699, 86720, 78578, 76707, 69945, 66221, 64445, 64376],
        [
            4158632960, 3917211648, 3536227840, 3455379968, 3035580416, 2801699328, 2699456000,
            2696345600,
        ],
    ),
    (
        "lirs",
        "LIRS",
        [89819, 79237, 73143, 70363, 68405, 64494, 58640, 53924],
        [
            4060558336, 3525952512, 3199406080, 3011810816, 2848310272, 2580918784, 2361375744,
            2288325120,
        ],
    ),
    (
        "gdsf",
        "GDSF",
        [89068, 84750, 74853, 70488, 67919, 64180, 61029, 58721],
        [
            4210604032, 4057062912, 3719372800, 3436728320, 3271431168, 3029728768, 2828587520,
            2677800448,
        ],
    ),
    (
        "belady",
        "Belady",
        [79256, 70724, 65481, 61594, 59645, 57599, 50873, 48974],
        [
            3472532480, 2995165696, 2726689792, 2537648128, 2403427840, 2269212672, 2134992896,
            2029769728,
        ],
    ),
];

/// Policies where MCOS deliberately differs from libCacheSim: (spec, libCacheSim's name,
/// libCacheSim's misses, MCOS's misses, MCOS's missed bytes, why).
type Pinned = (
    &'static str,
    &'static str,
    [u64; 8],
    [u64; 8],
    [u64; 8],
    &'static str,
);

const PINNED: &[Pinned] = &[
    (
        "hyperbolic",
        "Hyperbolic",
        [92836, 89281, 84407, 80420, 76299, 71843, 68884, 65654],
        [92905, 89469, 83376, 81254, 74574, 71156, 69274, 65263],
        [
            4212561920, 4065433088, 3763936768, 3646035968, 3247383040, 3030619648, 2936666112,
            2749738496,
        ],
        "both sample 64 random resident objects per eviction, each from its own random stream \
         (libCacheSim from its hash table, MCOS from a dense array with a fixed-seed SplitMix64)",
    ),
    (
        "beladysize",
        "BeladySize",
        [74329, 64524, 60279, 56514, 54539, 52613, 50581, 48974],
        [74237, 64412, 60232, 56509, 54532, 52605, 50581, 48974],
        [
            3494924288, 3038580736, 2770993664, 2537654272, 2403433984, 2269243392, 2134995456,
            2029769728,
        ],
        "libCacheSim samples 128 random resident objects per eviction from its own hash table \
         and random stream; MCOS takes the exact maximum of size x distance over all resident \
         objects",
    ),
];

fn trace_path() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/traces/libcachesim-cloudphysics/cloudPhysicsIO.oracleGeneral.bin");
    if path.is_file() {
        return Some(path);
    }
    let reason = format!("CloudPhysics sample not found at {}", path.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}; CI must run with shared/ beside the repository");
    }
    eprintln!("skipping the libCacheSim reproduction: {reason}");
    None
}

fn capacities() -> Vec<Capacity> {
    (1..=8).map(|k| Capacity::Bytes(k * 128 * MIB)).collect()
}

#[test]
fn libcachesim_eviction_test_reproduced() {
    let Some(path) = trace_path() else { return };
    let sim = ObjSimulator::open(&path, ObjFormat::OracleGeneral).expect("trace reads");
    let stats = sim.stats().expect("open makes the statistics pass");
    assert_eq!(stats.requests, REQUESTS);
    assert_eq!(stats.request_bytes, REQUEST_BYTES);
    assert_eq!(stats.unique_objects, 48_974);
    assert!(stats.has_next_access);

    let specs: Vec<&str> = EXACT
        .iter()
        .map(|e| e.0)
        .chain(PINNED.iter().map(|p| p.0))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results = sim
        .sweep(&specs, &capacities(), threads)
        .expect("sweep runs");
    let mut failures = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        let got = &results[k * 8..k * 8 + 8];
        let misses: Vec<u64> = got.iter().map(|r| r.misses).collect();
        let bytes: Vec<u64> = got.iter().map(|r| r.miss_bytes).collect();
        for r in got {
            assert_eq!((r.requests, r.request_bytes), (REQUESTS, REQUEST_BYTES));
        }
        eprintln!("{spec}: misses {misses:?}\n{spec}: miss bytes {bytes:?}");
        if let Some(e) = EXACT.iter().find(|e| e.0 == *spec) {
            if misses != e.2 || bytes != e.3 {
                failures.push(format!(
                    "{spec} (libCacheSim {}): misses {misses:?} want {:?}; bytes {bytes:?} want {:?}",
                    e.1, e.2, e.3
                ));
            }
        } else if let Some(p) = PINNED.iter().find(|p| p.0 == *spec) {
            if misses != p.3 || bytes != p.4 {
                failures.push(format!(
                    "{spec} (pinned, differs from libCacheSim {} on purpose: {}): misses \
                     {misses:?} want {:?}; bytes {bytes:?} want {:?}",
                    p.1, p.5, p.3, p.4
                ));
            }
            // Same algorithm, another victim choice: within 3 % of libCacheSim's miss counts.
            for (k, (&ours, &theirs)) in misses.iter().zip(&p.2).enumerate() {
                let off = (ours as f64 - theirs as f64).abs() / theirs as f64;
                if off > 0.03 {
                    failures.push(format!(
                        "{spec} at {} MiB: {ours} misses, {:.1} % from libCacheSim's {theirs}",
                        (k + 1) * 128,
                        off * 100.0
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
