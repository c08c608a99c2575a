//! A small fuzzing harness on stable Rust (`cargo fuzz` needs nightly): each target is a proptest
//! property run under a budget, with inputs drawn from its seed corpus (`fuzz/seeds/<target>.txt`),
//! mutations of those seeds, and arbitrary values. Not coverage-guided; what it has over a plain
//! proptest is the budget (a fixed time per target in CI, a fixed number of cases otherwise),
//! the seed corpus, and one regression file per target (`fuzz/regressions/<target>.txt`, proptest's
//! persisted failure seeds, replayed first on every run and kept in the repository).
//!
//! The budget comes from the environment:
//! * `FEDSTATE_FUZZ_SECONDS=N`: keep generating batches for N seconds per target (the CI `fuzz`
//!   stage);
//! * `FEDSTATE_FUZZ_CASES=N`: cases per batch (default 256; the unit stage runs one batch).
//!
//! A failure panics with the minimal input proptest shrank it to; make that input a unit test
//! next to the code it crashed, fix the code, and keep the regression file.

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::sync::Once;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestCaseError, TestRunner};

/// How long, or how many cases, each target runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Cases per batch.
    pub cases: u32,
    /// Run batches until this much time has passed; one batch when `None`.
    pub time: Option<Duration>,
}

impl Budget {
    pub const DEFAULT_CASES: u32 = 256;

    /// From `FEDSTATE_FUZZ_SECONDS` and `FEDSTATE_FUZZ_CASES`.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        Self {
            cases: var("FEDSTATE_FUZZ_CASES")
                .and_then(|c| u32::try_from(c).ok())
                .filter(|c| *c > 0)
                .unwrap_or(Self::DEFAULT_CASES),
            time: var("FEDSTATE_FUZZ_SECONDS")
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
        }
    }
}

/// What one target did, for the log line and for tests of the harness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ran {
    pub cases: u64,
    pub elapsed: Duration,
}

thread_local! {
    /// Set while this thread runs a target: its panics are expected findings, not noise.
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    /// The last panic of a target on this thread, with its location.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside a target are recorded (location and message) instead of printed: shrinking
/// a crash re-runs it hundreds of times. Panics anywhere else print as usual.
fn record_target_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(Cell::get) {
                LAST_PANIC.with(|l| *l.borrow_mut() = Some(info.to_string()));
            } else {
                default(info);
            }
        }));
    });
}

/// Where a target's regression seeds live.
pub fn regression_file(target: &str) -> String {
    format!("{}/regressions/{target}.txt", env!("CARGO_MANIFEST_DIR"))
}

/// Run `test` on inputs from `strategy` under `budget`, replaying the target's regression seeds
/// first. Panics with the minimal failing input.
#[allow(
    clippy::panic,
    reason = "called from the fuzz tests: panicking with the minimal input is how it fails them"
)]
pub fn fuzz_with<S>(
    target: &str,
    budget: Budget,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Ran
where
    S: Strategy,
    S::Value: Debug,
{
    // proptest wants a &'static str; one small leak per target and run.
    let file: &'static str = Box::leak(regression_file(target).into_boxed_str());
    let started = Instant::now();
    let mut cases = 0u64;
    // proptest's default reads `PROPTEST_RNG_SEED`: CI sets it, so a CI run is reproducible.
    let base = Config::default();
    for batch in 0u64.. {
        // A new runner per batch: a fresh random seed (or the next fixed one), the regression
        // seeds replayed again.
        let rng_seed = match base.rng_seed {
            RngSeed::Fixed(seed) => RngSeed::Fixed(seed.wrapping_add(batch)),
            RngSeed::Random => RngSeed::Random,
        };
        let config = Config {
            cases: budget.cases,
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
            // Shrinking a crash should not eat the whole budget.
            max_shrink_time: 30_000,
            rng_seed,
            ..base.clone()
        };
        let mut runner = TestRunner::new(config);
        record_target_panics();
        FUZZING.with(|f| f.set(true));
        let result = runner.run(&strategy, &test);
        FUZZING.with(|f| f.set(false));
        if let Err(e) = result {
            let panic = LAST_PANIC
                .with(|l| l.borrow_mut().take())
                .map(|p| format!("\nthe last panic while shrinking: {p}"))
                .unwrap_or_default();
            let rerun = match rng_seed {
                RngSeed::Fixed(seed) => format!(
                    " (batch seed {seed}: PROPTEST_RNG_SEED={seed} FEDSTATE_FUZZ_CASES={} reruns it)",
                    budget.cases
                ),
                RngSeed::Random => String::new(),
            };
            panic!(
                "fuzz target {target} failed after {cases} cases{rerun}: {e}{panic}\nits seed is kept in {file}; make the minimal input above a unit test next to the code it broke"
            );
        }
        cases += u64::from(budget.cases);
        if budget.time.is_none_or(|t| started.elapsed() >= t) {
            break;
        }
    }
    let ran = Ran {
        cases,
        elapsed: started.elapsed(),
    };
    eprintln!(
        "fuzz {target}: {} cases in {:.1} s, no failure",
        ran.cases,
        ran.elapsed.as_secs_f64()
    );
    ran
}

/// [`fuzz_with`] under [`Budget::from_env`].
pub fn fuzz<S>(
    target: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Ran
where
    S: Strategy,
    S::Value: Debug,
{
    fuzz_with(target, Budget::from_env(), strategy, test)
}

/// The non-empty, non-comment lines of a seed file (`#` starts a comment line).
pub fn seed_lines(text: &'static str) -> Vec<&'static str> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect()
}

/// One edit of a mutation: where (a fraction of the length), what, and with which token.
type Edit = (usize, u8, &'static str, char);

fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for &(at, op, token, c) in edits {
        let at = if chars.is_empty() {
            0
        } else {
            at % (chars.len() + 1)
        };
        match op % 5 {
            // Insert a token that tends to matter: numbers at the limits, JSON punctuation.
            0 => {
                chars.splice(at..at, token.chars());
            }
            // Insert any character.
            1 => chars.insert(at, c),
            // Delete up to 8 characters.
            2 => {
                let end = (at + 1 + (c as usize % 8)).min(chars.len());
                if at < end {
                    chars.drain(at..end);
                }
            }
            // Replace one character.
            3 => {
                if at < chars.len() {
                    chars[at] = c;
                }
            }
            // Duplicate a stretch (repeated keys, sections, digits).
            _ => {
                let end = (at + 1 + (c as usize % 16)).min(chars.len());
                if at < end {
                    let copy: Vec<char> = chars[at..end].to_vec();
                    chars.splice(end..end, copy);
                }
            }
        }
    }
    chars.into_iter().collect()
}

/// Strings: a seed as is, a seed with a few edits (inserting `tokens`, characters, deleting,
/// replacing, duplicating), or anything at all.
pub fn text(seeds: Vec<&'static str>, tokens: &'static [&'static str]) -> BoxedStrategy<String> {
    let edits = proptest::collection::vec(
        (any::<usize>(), any::<u8>(), select(tokens), any::<char>()),
        1..6,
    );
    prop_oneof![
        1 => select(seeds.clone()).prop_map(str::to_owned),
        6 => (select(seeds), edits).prop_map(|(s, e)| apply(s, &e)),
        2 => any::<String>(),
    ]
    .boxed()
}

/// Decode a hex seed line (seed files of byte targets hold one message per line).
pub fn hex(line: &str) -> Vec<u8> {
    (0..line.len() / 2)
        .filter_map(|i| line.get(2 * i..2 * i + 2))
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

/// One edit of a byte mutation: where, what, and a value.
type ByteEdit = (usize, u8, u32);

/// Little-endian 32-bit values that tend to matter in length fields.
const INTERESTING_I32: &[u32] = &[
    0,
    1,
    4,
    5,
    16,
    21,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x0300_0000,
];

fn apply_bytes(seed: &[u8], edits: &[ByteEdit]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for &(at, op, v) in edits {
        let at = if out.is_empty() {
            0
        } else {
            at % (out.len() + 1)
        };
        match op % 5 {
            // Overwrite a 32-bit field (lengths, sizes, flags, opcodes) with a value at a limit.
            0 => {
                let value = INTERESTING_I32[v as usize % INTERESTING_I32.len()].to_le_bytes();
                for (i, b) in value.iter().enumerate() {
                    if let Some(slot) = out.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            // Flip the bits of one byte.
            1 => {
                if let Some(b) = out.get_mut(at) {
                    *b ^= v.to_le_bytes()[0] | 1;
                }
            }
            // Truncate.
            2 => out.truncate(at),
            // Insert bytes.
            3 => {
                out.splice(at..at, v.to_le_bytes());
            }
            // Duplicate a stretch.
            _ => {
                let end = (at + 1 + (v as usize % 32)).min(out.len());
                if at < end {
                    let copy = out[at..end].to_vec();
                    out.splice(end..end, copy);
                }
            }
        }
    }
    out
}

/// Bytes: a seed as is, a seed with a few byte edits, or anything at all.
pub fn bytes(seeds: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    let edits = proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u32>()), 1..5);
    prop_oneof![
        1 => select(seeds.clone()),
        6 => (select(seeds), edits).prop_map(|(s, e)| apply_bytes(&s, &e)),
        2 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
    .boxed()
}

/// Tokens worth inserting into numbers and JSON.
pub const NUMBER_TOKENS: &[&str] = &[
    "0",
    "-1",
    "-",
    "+",
    ".",
    "e",
    "E",
    "e-",
    "50",
    "51",
    "7",
    "8",
    "1000",
    "1001",
    "2147483647",
    "2147483648",
    "-2147483648",
    "9223372036854775807",
    "9223372036854775808",
    "170141183460469231731687303715884105727",
    "1e308",
    "Ki",
    "Ei",
    "m",
    "n",
    "000000000000000000000000000000000000000000",
];

/// [`NUMBER_TOKENS`] and JSON punctuation.
pub const JSON_TOKENS: &[&str] = &[
    "0",
    "-1",
    "50",
    "51",
    "2147483647",
    "-2147483648",
    "9223372036854775807",
    "1e35",
    "1.5",
    "null",
    "true",
    "\"\"",
    "\"a\"",
    ",",
    ":",
    "{",
    "}",
    "[",
    "]",
    "\\u0000",
    "\"arbiter\":true",
    "\"votes\":7",
    "\"priority\":1001",
    "\"memberIndex\":49",
    "\"arbiterOnly\":true",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_property_is_reported_with_its_minimal_input() {
        let budget = Budget {
            cases: 64,
            time: None,
        };
        let failed = std::panic::catch_unwind(|| {
            fuzz_with("harness-self-test", budget, 0u32..1000, |n| {
                prop_assert!(n < 10);
                Ok(())
            })
        });
        let message = failed
            .err()
            .and_then(|p| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(
            message.contains("fuzz target harness-self-test failed"),
            "{message}"
        );
        assert!(message.contains("minimal failing input: 10"), "{message}");
        let _ = std::fs::remove_file(regression_file("harness-self-test"));

        // A crash names where it happened.
        let crashed = std::panic::catch_unwind(|| {
            fuzz_with("harness-self-test-crash", budget, 0u32..1000, |n| {
                let _ = [1u8, 2, 3][usize::try_from(n).unwrap_or(0)];
                Ok(())
            })
        });
        let message = crashed
            .err()
            .and_then(|p| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(message.contains("minimal failing input: 3"), "{message}");
        assert!(message.contains("panicked at fuzz/src/lib.rs"), "{message}");
        let _ = std::fs::remove_file(regression_file("harness-self-test-crash"));
    }

    #[test]
    fn a_time_budget_runs_batches_until_it_is_spent() {
        let budget = Budget {
            cases: 16,
            time: Some(Duration::from_millis(200)),
        };
        let ran = fuzz_with("harness-self-test-time", budget, any::<u8>(), |_| Ok(()));
        assert!(ran.elapsed >= Duration::from_millis(200));
        assert!(ran.cases > 16, "{ran:?}");
    }

    #[test]
    fn mutations_edit_seeds() {
        assert_eq!(apply("abc", &[(1, 0, "X", 'y')]), "aXbc");
        assert_eq!(apply("abc", &[(3, 1, "", 'y')]), "abcy");
        assert_eq!(apply("abc", &[(0, 2, "", '\u{1}')]), "c");
        assert_eq!(apply("abc", &[(2, 3, "", 'z')]), "abz");
        assert_eq!(apply("abc", &[(0, 4, "", '\u{1}')]), "ababc");
        assert_eq!(apply("", &[(5, 2, "", 'a'), (9, 3, "", 'b')]), "");
        assert_eq!(hex("00ff10"), [0, 255, 16]);
        assert_eq!(
            apply_bytes(&[1, 2, 3, 4, 5], &[(1, 0, 8)]),
            [1, 255, 255, 255, 255]
        );
        assert_eq!(apply_bytes(&[1, 2, 3], &[(2, 2, 0)]), [1, 2]);
    }
}
